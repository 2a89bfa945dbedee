/* CPU seconds for the benchmarks (see cpu.h). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include "cpu.h"

double bench_self_cpu(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

double bench_pg_cpu(PGconn *pg, int only_mintcad)
{
	PGresult *res = PQexec(pg, only_mintcad ?
		"SELECT pid FROM pg_stat_activity WHERE application_name = 'mintcad' "
		"AND datname = current_database()" :
		"SELECT pid FROM pg_stat_activity");
	long hz = sysconf(_SC_CLK_TCK);
	double sum = 0;

	for (int i = 0; PQresultStatus(res) == PGRES_TUPLES_OK && i < PQntuples(res); i++) {
		char path[64], buf[1024], *p;
		unsigned long ut, st;
		FILE *f;
		size_t n;
		snprintf(path, sizeof(path), "/proc/%s/stat", PQgetvalue(res, i, 0));
		if ((f = fopen(path, "r")) == NULL)
			continue;
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = '\0';
		/* fields after the command name: state is field 3, utime 14, stime 15 */
		if ((p = strrchr(buf, ')')) != NULL &&
		    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2)
			sum += (double)(ut + st) / (double)hz;
	}
	PQclear(res);
	return sum;
}
