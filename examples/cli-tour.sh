#!/usr/bin/env bash
# A tour of vesselctl against a running vesseld (VESSEL_HOST, default the
# local socket): load an image, run containers, look at them, clean up.
# usage: examples/cli-tour.sh IMAGE-ARCHIVE.tar   (an OCI image-layout tar)
set -euo pipefail
ctl=${VESSELCTL:-vesselctl}
archive=$1

$ctl version
$ctl image load -i "$archive" --name tour/busybox:1
$ctl image ls

# run: output streams back, the exit code is the container's
$ctl run --rm tour/busybox:1 echo "hello from a VM"
set +e; $ctl run --rm tour/busybox:1 sh -c 'exit 3'; echo "exit code: $?"; set -e

# a long-running container: exec into it, read its logs, stop it
$ctl run -d --name tour-web tour/busybox:1 sh -c 'echo serving; exec httpd -f -p 80 -h /var/www'
$ctl exec tour-web cat /var/www/index.html
sleep 1
$ctl logs tour-web
$ctl ps
$ctl stop -t 2 tour-web
$ctl ps -a
$ctl rm tour-web

$ctl network ls
$ctl system info
$ctl image rm tour/busybox:1
