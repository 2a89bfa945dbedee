/* CPU seconds for the benchmarks: on a shared machine the wall-clock
 * figures include waiting for other processes, these do not. */
#ifndef MINTCA_BENCH_CPU_H
#define MINTCA_BENCH_CPU_H
#include <libpq-fe.h>

/* User + system seconds of this process so far. */
double bench_self_cpu(void);

/* User + system seconds so far of the PostgreSQL processes that
 * pg_stat_activity lists on pg's server, read from /proc (the cluster must be
 * on this machine): with only_mintcad, the sessions named "mintcad" on pg's
 * database (the store's own); else every process listed, background ones
 * (WAL writer, checkpointer, autovacuum) included. */
double bench_pg_cpu(PGconn *pg, int only_mintcad);

#endif
