#!/bin/sh
./configure --prefix=/usr/local/pgsql --without-readline
