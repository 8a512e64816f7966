#!/usr/bin/env bash
# Bazel's workspace status: the commit vesseld reports (System.Version).
c=$(git rev-parse HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || c="$c+dirty"
echo "STABLE_GIT_COMMIT $c"
