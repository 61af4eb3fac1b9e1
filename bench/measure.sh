#!/usr/bin/env bash
# The former name of bench/sitting.sh (one whole sitting; see there).
exec "$(dirname "$0")/sitting.sh" "$@"
