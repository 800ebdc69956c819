#!/bin/bash
echo "old" > "$1/existing.conf"
mkdir -p "$1/keep"
