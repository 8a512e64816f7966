#include <gtest/gtest.h>

extern "C" {
#include "guest-agent/dns.h"
}

TEST(Dns, ResolvConf) {
  const char *ns[] = {"10.0.0.1", "fd00::1", "1.1.1.1", "8.8.8.8"};
  const char *search[] = {"example.com", "corp"};
  const char *opts[] = {"ndots:2", "edns0"};
  char out[512];
  dns_resolv_conf(ns, 4, search, 2, opts, 2, out, sizeof out);
  EXPECT_STREQ(out,
               "nameserver 10.0.0.1\nnameserver fd00::1\nnameserver 1.1.1.1\n"
               "search example.com corp\noptions ndots:2 edns0\n");
  dns_resolv_conf(nullptr, 0, nullptr, 0, nullptr, 0, out, sizeof out);
  EXPECT_STREQ(out, "");
}

TEST(Dns, HostsLine) {
  const char *names[] = {"db", "db.local"};
  char out[64];
  EXPECT_EQ(dns_hosts_line("10.1.2.3", names, 2, out, sizeof out), 21u);
  EXPECT_STREQ(out, "10.1.2.3\tdb db.local\n");
  char tiny[4];
  EXPECT_EQ(dns_hosts_line("10.1.2.3", names, 2, tiny, sizeof tiny), 0u);
}
