#!/bin/sh
export LDFLAGS="$LDFLAGS -sASYNCIFY=1"
