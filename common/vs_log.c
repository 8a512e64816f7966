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

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
void vs_log_crashes(const char *prog) { (void)prog; }
#else
#include <execinfo.h>
#include <signal.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

/* The one static here: a signal handler has no other way to its name. */
static const char *crash_prog = "vessel";

static void on_crash(int sig) {
  char msg[128];
  int n = snprintf(msg, sizeof msg, "%s FATAL: signal %d (%s); backtrace:\n", crash_prog, sig,
                   strsignal(sig));
  if (write(2, msg, (size_t)n) < 0) n = 0;
  void *frames[48];
  backtrace_symbols_fd(frames, backtrace(frames, 48), 2);
  signal(sig, SIG_DFL);
  raise(sig);
}

void vs_log_crashes(const char *prog) {
  crash_prog = prog;
  /* A dynamic program loads libgcc's unwinder on its first backtrace:
   * now, not inside the handler. A static one (no interpreter: the static
   * vminitd) has it linked in, and its first backtrace would sort every
   * unwind entry of the binary: ~130 ms of a TCG guest's boot. */
  if (getauxval(AT_BASE) != 0) {
    void *warm[1];
    backtrace(warm, 1);
  }
  const int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) signal(sigs[i], on_crash);
}
#endif
