/* Shared main for every Check suite: each test_<area>.c defines
 * nd_test_suite().  Prints Check's "Checks: N, Failures: F, Errors: E". */
#include <check.h>
#include <stdlib.h>

#include "nd_test.h"

int main(void) {
  SRunner *sr = srunner_create(nd_test_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
