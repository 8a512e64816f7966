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

#ifdef __cplusplus
}
#endif
#endif
