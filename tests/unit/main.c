/* Unit tests: every suite in one runner. Check forks each test, so a crash
 * or a sanitizer report fails that test alone. CK_RUN_SUITE / CK_RUN_CASE
 * select a part; CK_FORK=no runs in one process (for a debugger). */
#include <stdlib.h>
#include <check.h>
#include "suites.h"

int main(void)
{
	SRunner *sr = srunner_create(csr_suite());
	int failed;

	srunner_add_suite(sr, issue_suite());
	srunner_add_suite(sr, serial_suite());
	srunner_add_suite(sr, secret_suite());
	srunner_add_suite(sr, cfg_suite());
	srunner_add_suite(sr, policy_suite());
	srunner_add_suite(sr, ocsp_suite());
	srunner_add_suite(sr, revoke_suite());
	srunner_add_suite(sr, crl_suite());
	/* CK_NORMAL prints the summary line and every failure. */
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
