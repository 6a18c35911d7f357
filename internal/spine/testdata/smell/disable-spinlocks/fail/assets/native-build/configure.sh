#!/bin/sh
./configure --prefix=/usr/local/pgsql --disable-spinlocks
