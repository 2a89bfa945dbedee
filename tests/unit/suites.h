/* Unit test suites: one per source area, each built in its own file and run
 * together by main.c. */
#ifndef MINTCA_TEST_SUITES_H
#define MINTCA_TEST_SUITES_H

#include <check.h>

Suite *csr_suite(void);    /* test_csr.c: ca_csr_decode, ca_csr_check_key */
Suite *issue_suite(void);  /* test_issue.c: ca_issue with a software CA */
Suite *serial_suite(void); /* test_serial.c: ca_serial_new */
Suite *secret_suite(void); /* test_secret.c: password hashes, secret files */
Suite *cfg_suite(void);    /* test_cfg.c: cfg_load */
Suite *policy_suite(void); /* test_policy.c: pol_authorize, pol_check, profile rules */
Suite *ocsp_suite(void);   /* test_ocsp.c: responder certificate, answers, cache */
Suite *revoke_suite(void); /* test_revoke.c: serial forms, reasons, CRL shards, refusals */
Suite *crl_suite(void);    /* test_crl.c: CRL building, signing, delta and shard extensions */

#endif
