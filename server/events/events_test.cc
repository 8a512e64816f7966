#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <thread>

#include "server/events/events.h"

namespace {

evb_event Ev(int type, const char *image = "") {
  evb_event e;
  memset(&e, 0, sizeof e);
  e.type = type;
  snprintf(e.image, sizeof e.image, "%s", image);
  return e;
}

TEST(Events, LiveDeliveryInOrder) {
  vs_err err;
  evb_bus *b = evb_new(16, &err);
  evb_sub *s = evb_subscribe(b, 0, 0, &err);
  std::thread pub([&] {
    for (int i = 0; i < 10; i++) {
      evb_event e = Ev(EVB_IMAGE_PULLED);
      evb_publish(b, &e);
    }
  });
  for (uint64_t want = 1; want <= 10; want++) {
    evb_event got;
    ASSERT_EQ(evb_next(s, &got, -1, 5000, &err), 1);
    EXPECT_EQ(got.seq, want);
    EXPECT_GT(got.time_ns, 0);
  }
  pub.join();
  evb_event got;
  EXPECT_EQ(evb_next(s, &got, -1, 50, &err), 0);  // nothing more: timeout
  evb_unsubscribe(s);
  evb_free(b);
}

TEST(Events, ReplayAfterSequenceAndSince) {
  vs_err err;
  evb_bus *b = evb_new(100, &err);
  for (int i = 0; i < 5; i++) {
    evb_event e = Ev(EVB_IMAGE_TAGGED);
    e.time_ns = 1000 + i;
    evb_publish(b, &e);
  }
  evb_sub *s = evb_subscribe(b, 3, 0, &err);
  evb_event got;
  ASSERT_EQ(evb_next(s, &got, -1, 0, &err), 1);
  EXPECT_EQ(got.seq, 4u);
  evb_unsubscribe(s);
  s = evb_subscribe(b, 0, 1002, &err);
  ASSERT_EQ(evb_next(s, &got, -1, 0, &err), 1);
  EXPECT_EQ(got.seq, 3u);
  evb_unsubscribe(s);
  s = evb_subscribe(b, 0, 0, &err);  // live only
  EXPECT_EQ(evb_next(s, &got, -1, 0, &err), 0);
  evb_unsubscribe(s);
  evb_free(b);
}

TEST(Events, SlowSubscriberIsToldNotSilentlyDropped) {
  vs_err err;
  evb_bus *b = evb_new(4, &err);
  evb_sub *s = evb_subscribe(b, 0, 0, &err);
  for (int i = 0; i < 6; i++) {
    evb_event e = Ev(EVB_IMAGE_PULLED);
    evb_publish(b, &e);
  }
  evb_event got;
  EXPECT_EQ(evb_next(s, &got, -1, 0, &err), -1);
  EXPECT_EQ(err.code, VS_RESOURCE_EXHAUSTED);
  evb_unsubscribe(s);
  evb_free(b);
}

TEST(Events, CancelFdWakesTheWaiter) {
  vs_err err;
  evb_bus *b = evb_new(4, &err);
  evb_sub *s = evb_subscribe(b, 0, 0, &err);
  int cancel = eventfd(0, EFD_CLOEXEC);
  std::thread t([&] {
    usleep(50000);
    uint64_t one = 1;
    ASSERT_EQ(write(cancel, &one, sizeof one), 8);
  });
  evb_event got;
  EXPECT_EQ(evb_next(s, &got, cancel, -1, &err), 0);
  t.join();
  close(cancel);
  evb_unsubscribe(s);
  evb_free(b);
}

TEST(Events, Attributes) {
  evb_event e = Ev(EVB_IMAGE_PULLED);
  evb_attr(&e, "digest", "sha256:x");
  evb_attr(&e, "k", "v");
  EXPECT_STREQ(e.attrs, "digest=sha256:x\nk=v\n");
}

}  // namespace
