#include <gtest/gtest.h>

#include <fstream>
#include <string>

extern "C" {
#include "guest-agent/cgroup.h"
}

TEST(Cgroup, LimitsFromResources) {
  cg_limits l;
  cg_limits_from(1500, 64 << 20, 100, 0, 0, &l);
  EXPECT_EQ(l.memory_bytes, 64 << 20);
  EXPECT_EQ(l.pids_max, 100);
  EXPECT_EQ(l.cpu_period_us, 100000);
  EXPECT_EQ(l.cpu_quota_us, 150000);
  cg_limits_from(2000, 0, 0, 0, 0, &l);
  EXPECT_EQ(l.cpu_quota_us, 0);  // whole CPUs: the VM size is the limit
  cg_limits_from(500, 0, 0, 30000, 50000, &l);
  EXPECT_EQ(l.cpu_quota_us, 30000);
  EXPECT_EQ(l.cpu_period_us, 50000);
}

TEST(Cgroup, ReadKeyAndU64) {
  std::string d = testing::TempDir();
  std::ofstream(d + "/memory.events") << "low 0\nhigh 0\nmax 3\noom 2\noom_kill 1\n";
  std::ofstream(d + "/memory.max") << "max\n";
  std::ofstream(d + "/pids.max") << "42\n";
  uint64_t v = 99;
  ASSERT_EQ(cg_read_key(d.c_str(), "memory.events", "oom", &v), 0);
  EXPECT_EQ(v, 2u);
  ASSERT_EQ(cg_read_key(d.c_str(), "memory.events", "oom_kill", &v), 0);
  EXPECT_EQ(v, 1u);
  EXPECT_EQ(cg_read_key(d.c_str(), "memory.events", "nope", &v), -1);
  ASSERT_EQ(cg_read_u64(d.c_str(), "memory.max", &v), 0);
  EXPECT_EQ(v, 0u);
  ASSERT_EQ(cg_read_u64(d.c_str(), "pids.max", &v), 0);
  EXPECT_EQ(v, 42u);
}

TEST(Cgroup, IoStatSumsDevices) {
  uint64_t rb, wb, ri, wi;
  cg_parse_io_stat("254:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n"
                   "254:16 rbytes=5 wbytes=6 rios=7 wios=8 dbytes=0 dios=0\n",
                   &rb, &wb, &ri, &wi);
  EXPECT_EQ(rb, 105u);
  EXPECT_EQ(wb, 206u);
  EXPECT_EQ(ri, 8u);
  EXPECT_EQ(wi, 10u);
}
