#include <gtest/gtest.h>

extern "C" {
#include "guest-agent/caps.h"
}

TEST(Caps, Names) {
  EXPECT_EQ(cap_from_name("CAP_CHOWN"), 0);
  EXPECT_EQ(cap_from_name("net_admin"), 12);
  EXPECT_EQ(cap_from_name("Sys_Admin"), 21);
  EXPECT_EQ(cap_from_name("CAP_CHECKPOINT_RESTORE"), 40);
  EXPECT_EQ(cap_from_name("CAP_NOPE"), -1);
}

TEST(Caps, DefaultSetHasFourteen) {
  EXPECT_EQ(__builtin_popcountll(cap_default_set()), 14);
  EXPECT_TRUE(cap_default_set() & (1ull << cap_from_name("KILL")));
  EXPECT_FALSE(cap_default_set() & (1ull << cap_from_name("SYS_ADMIN")));
}

TEST(Caps, AddDrop) {
  const char *add[] = {"NET_ADMIN"};
  const char *drop[] = {"CAP_NET_RAW", "chown"};
  uint64_t s;
  vs_err err;
  ASSERT_EQ(cap_resolve(add, 1, drop, 2, &s, &err), 0);
  EXPECT_TRUE(s & (1ull << 12));
  EXPECT_FALSE(s & (1ull << 13));
  EXPECT_FALSE(s & 1ull);
  EXPECT_EQ(__builtin_popcountll(s), 13);
}

TEST(Caps, AllForms) {
  const char *all[] = {"ALL"};
  const char *kill[] = {"KILL"};
  uint64_t s;
  vs_err err;
  ASSERT_EQ(cap_resolve(all, 1, kill, 1, &s, &err), 0);
  EXPECT_EQ(__builtin_popcountll(s), CAP_COUNT - 1);
  ASSERT_EQ(cap_resolve(kill, 1, all, 1, &s, &err), 0);
  EXPECT_EQ(s, 1ull << 5);
  const char *bad[] = {"CAP_FLY"};
  EXPECT_EQ(cap_resolve(bad, 1, nullptr, 0, &s, &err), -1);
  EXPECT_EQ(err.code, VS_INVALID_ARGUMENT);
}
