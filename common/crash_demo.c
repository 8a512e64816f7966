/* Crashes once vs_log_crashes is set up: //common:crash_test checks what
 * the handler prints, in a dynamic and in a static build of this. */
#include <signal.h>

#include "common/vs_log.h"

int main(void) {
  vs_log_crashes("crash-demo");
  raise(SIGSEGV);
  return 0;
}
