#include <gtest/gtest.h>
#include <poll.h>

#include <cstring>

extern "C" {
#include "guest-agent/events.h"
}

TEST(Events, FanOutInOrderWithSequence) {
  ev_hub h;
  ev_hub_init(&h);
  ev_sub *a = ev_subscribe(&h), *b = ev_subscribe(&h);
  ev_event e;
  memset(&e, 0, sizeof e);
  e.type = 3;
  strcpy(e.container_id, "c1");
  ev_publish(&h, &e);
  e.type = 21;
  ev_publish(&h, &e);
  struct pollfd pf = {a->fd, POLLIN, 0};
  EXPECT_EQ(poll(&pf, 1, 0), 1);
  ev_event got;
  ASSERT_EQ(ev_next(&h, a, &got), 1);
  EXPECT_EQ(got.sequence, 1u);
  EXPECT_EQ(got.type, 3);
  EXPECT_STREQ(got.container_id, "c1");
  EXPECT_NE(got.at.tv_sec, 0);
  ASSERT_EQ(ev_next(&h, a, &got), 1);
  EXPECT_EQ(got.sequence, 2u);
  EXPECT_EQ(ev_next(&h, a, &got), 0);
  ASSERT_EQ(ev_next(&h, b, &got), 1);
  EXPECT_EQ(got.sequence, 1u);
  ev_unsubscribe(&h, a);
  ev_unsubscribe(&h, b);
}

TEST(Events, SlowSubscriberOverflows) {
  ev_hub h;
  ev_hub_init(&h);
  ev_sub *s = ev_subscribe(&h);
  ev_event e;
  memset(&e, 0, sizeof e);
  for (int i = 0; i < EV_QUEUE_MAX + 1; i++) ev_publish(&h, &e);
  ev_event got;
  EXPECT_EQ(ev_next(&h, s, &got), -1);
  ev_unsubscribe(&h, s);
}
