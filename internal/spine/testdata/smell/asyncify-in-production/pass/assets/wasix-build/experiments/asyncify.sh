#!/bin/sh
wasm-opt --asyncify in.wasm -o out.wasm
