#include "util/sqlite_stmt.h"

#include "log/log.h"

int nd_sqlite_run(sqlite3 *db, sqlite3_stmt *st, const char *comp, const char *what,
                  const char *path) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc == SQLITE_DONE) return 0;
  ND_ERROR_RL(comp, "%s %s: %s: %s", what, path, sqlite3_sql(st), sqlite3_errmsg(db));
  return -1;
}
