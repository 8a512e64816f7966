#include <gtest/gtest.h>

#include <string>

extern "C" {
#include "guest-agent/sys.h"
}

TEST(Sys, Meminfo) {
  uint64_t total, avail;
  ASSERT_EQ(sy_parse_meminfo("MemTotal:        1000 kB\nMemFree:   5 kB\nMemAvailable:     600 kB\n",
                             &total, &avail),
            0);
  EXPECT_EQ(total, 1000u * 1024);
  EXPECT_EQ(avail, 600u * 1024);
  EXPECT_EQ(sy_parse_meminfo("nothing", &total, &avail), -1);
}

TEST(Sys, BinfmtMagicLine) {
  const uint8_t magic[] = {0x7f, 'E', 'L', 'F', 0x02};
  const uint8_t mask[] = {0xff, 0xff, 0xff, 0xff, 0xfe};
  char out[512];
  vs_err err;
  ASSERT_EQ(sy_binfmt_line("qemu-aarch64", 1, 0, magic, 5, mask, 5, "/usr/bin/qemu-aarch64-static",
                           "F", out, sizeof out, &err),
            0)
      << err.msg;
  EXPECT_STREQ(out,
               ":qemu-aarch64:M:0:\\x7f\\x45\\x4c\\x46\\x02:\\xff\\xff\\xff\\xff\\xfe:"
               "/usr/bin/qemu-aarch64-static:F");
}

TEST(Sys, BinfmtExtensionAndErrors) {
  char out[512];
  vs_err err;
  ASSERT_EQ(sy_binfmt_line("py", 2, 0, (const uint8_t *)"py", 2, nullptr, 0, "/usr/bin/python3", "",
                           out, sizeof out, &err),
            0);
  EXPECT_STREQ(out, ":py:E::py::/usr/bin/python3:");
  EXPECT_EQ(sy_binfmt_line("a/b", 1, 0, (const uint8_t *)"x", 1, nullptr, 0, "/i", "", out,
                           sizeof out, &err),
            -1);
  EXPECT_EQ(sy_binfmt_line("x", 0, 0, (const uint8_t *)"x", 1, nullptr, 0, "/i", "", out,
                           sizeof out, &err),
            -1);
  EXPECT_EQ(sy_binfmt_line("x", 1, 0, (const uint8_t *)"x", 1, (const uint8_t *)"yy", 2, "/i", "",
                           out, sizeof out, &err),
            -1);
  EXPECT_EQ(sy_binfmt_line("x", 1, 0, (const uint8_t *)"x", 1, nullptr, 0, "rel", "", out,
                           sizeof out, &err),
            -1);
  EXPECT_EQ(sy_binfmt_line("x", 1, 0, (const uint8_t *)"x", 1, nullptr, 0, "/i", "Z", out,
                           sizeof out, &err),
            -1);
}

TEST(Sys, EntropyBounds) {
  vs_err err;
  EXPECT_EQ(sy_add_entropy("", 0, &err), -1);
  EXPECT_EQ(err.code, VS_INVALID_ARGUMENT);
  std::string big(4097, 'x');
  EXPECT_EQ(sy_add_entropy(big.data(), big.size(), &err), -1);
}

TEST(Sys, SysctlUnknownKey) {
  vs_err err;
  EXPECT_EQ(sy_sysctl("no.such.key", "1", &err), -1);
  EXPECT_EQ(err.code, VS_NOT_FOUND);
  EXPECT_EQ(sy_sysctl("../etc/passwd", "1", &err), -1);
  EXPECT_EQ(err.code, VS_INVALID_ARGUMENT);
}
