#!/bin/sh
set -eu
curl -fsSL -o /tmp/x.tar.gz https://example.org/x.tar.gz
