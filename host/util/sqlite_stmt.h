/* Running prepared statements that return no row (BEGIN, COMMIT, INSERT,
 * ...), shared by the embedded bus and kv. */
#ifndef ND_SQLITE_STMT_H
#define ND_SQLITE_STMT_H

#include <sqlite3.h>

/* Steps `st` to completion and resets it: 0, or -1 after logging
 * "<what> <path>: <sql>: <error>" under the log component `comp`. */
int nd_sqlite_run(sqlite3 *db, sqlite3_stmt *st, const char *comp, const char *what,
                  const char *path);

#endif
