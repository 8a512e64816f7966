/* ch: the transport between vesseld and the agent. vsock where the VM has
 * it; else a virtio-serial port found by name and bridged to a socketpair,
 * because gRPC needs a socket (sendmsg: a char device is ENOTSOCK). A
 * host reconnect (vesseld restarted) gets a fresh gRPC connection. */
#ifndef VESSEL_GUEST_AGENT_CHANNEL_H
#define VESSEL_GUEST_AGENT_CHANNEL_H

#include <stddef.h>

#include "common/rpc.h"
#include "common/vs_err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CH_PORT_NAME "vessel.agent"
#define CH_VSOCK_PORT 1024

/* Finds the virtio-serial port whose <sysfs_dir>/<port>/name is name
 * (sysfs_dir: /sys/class/virtio-ports) and writes "/dev/<port>" to dev.
 * 1 found, 0 not (yet), -1 error. */
int ch_find_port(const char *sysfs_dir, const char *name, char *dev, size_t dev_len);

/* Bytes of a new host connection read while relaying the old one. */
typedef struct ch_carry {
  char buf[256 * 1024];
  size_t len;
} ch_carry;

/* Relays bytes between a virtio-serial port fd and a socket fd until the
 * host side disconnects (returns 0), the socket side closes (returns 1), or
 * a new host connection starts (returns 2, its first bytes in *carry). Bytes
 * in *carry at entry are sent to the socket first. Both fds are switched to
 * non-blocking. */
int ch_relay(int port_fd, int sock_fd, ch_carry *carry);

/* Starts the channel threads serving srv (already started). Waits up to
 * wait_ms for the port / vsock device to appear. */
int ch_start(vrpc_server *srv, const char *port_name, unsigned vsock_port,
             int wait_ms, vs_err *err);

#ifdef __cplusplus
}
#endif
#endif
