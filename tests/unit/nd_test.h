/* Helpers shared by the Check suites. */
#ifndef ND_TEST_H
#define ND_TEST_H

#include <check.h>
#include <stddef.h>

/* Each test_<area>.c defines this. */
Suite *nd_test_suite(void);

#endif
