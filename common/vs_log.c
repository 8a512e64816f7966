#include "common/vs_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

void vs_log(const char *prog, vs_log_level level, const char *fmt, ...) {
  static const char *const names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
  struct timespec ts;
  struct tm tm;
  char when[32], line[2048];
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  /* One write per line so concurrent threads don't interleave. */
  fprintf(stderr, "%s.%03ldZ %s %s: %s\n", when, ts.tv_nsec / 1000000, prog,
          names[level & 3], line);
}
