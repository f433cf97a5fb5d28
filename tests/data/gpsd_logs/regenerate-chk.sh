#!/bin/sh
# Regenerate the .log.chk reference files from the .log files with the installed gpsd.
# The committed ones were made by gpsd 3.22 (Debian/Ubuntu gpsd package), exactly so:
#   gpsfake -1 -p -q -s 38400 LOG > LOG.chk
# which is how gpsd's own regression tests make their .chk files.
set -eu
cd "$(dirname "$0")"
PATH="$PATH:/usr/sbin:/sbin"
for log in *.log; do
    gpsfake -1 -p -q -s 38400 "$log" > "$log.chk"
done
