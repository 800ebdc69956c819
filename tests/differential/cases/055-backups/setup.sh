#!/bin/bash
printf 'option_a=1\noption_b=2\n' > "$1/service.conf"
printf 'old template output\n' > "$1/rendered.conf"
