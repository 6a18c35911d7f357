#!/bin/sh
# No asyncify here: native exceptions and dynamic linking only.
export LDFLAGS="$LDFLAGS -fwasm-exceptions"
