/* Plain logging to stderr: "2026-11-28T05:19:54.123Z vesseld INFO: ...".
 * Stateless on purpose: the program name is passed by the caller's macro. */
#ifndef VESSEL_COMMON_VS_LOG_H
#define VESSEL_COMMON_VS_LOG_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum vs_log_level { VS_LOG_DEBUG, VS_LOG_INFO, VS_LOG_WARN, VS_LOG_ERROR } vs_log_level;

void vs_log(const char *prog, vs_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* On SIGSEGV, SIGBUS, SIGFPE, SIGILL or SIGABRT: write the signal and a
 * backtrace to stderr, then die of the signal as before (a crash in a test
 * run then leaves its trace in the log). A no-op under the sanitizers,
 * whose own reports are better. */
void vs_log_crashes(const char *prog);

#ifdef __cplusplus
}
#endif
#endif
