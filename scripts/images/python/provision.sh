#!/bin/sh
# Runs inside a container of the rootfs image with --network none: /build/recipe is this
# folder, /build/wheels the wheels downloaded on the host, /build/standins tests/standins (if any).
# scripts/images.sh commits the result as rpdeploy-test/python:1.
set -eu
# Images derived from this one may pip install into the system Python, as in vllm/vllm-openai.
rm -f /usr/lib/python3*/EXTERNALLY-MANAGED
python3 -m pip install --no-index --find-links /build/wheels --no-cache-dir --root-user-action=ignore \
  -r /build/recipe/requirements.txt
if [ -d /build/standins ]; then
  python3 /build/recipe/install_standins.py /build/standins
fi
# What a rendered Dockerfile relies on: its pinned pip install is satisfied with no network (no --no-index).
python3 -m pip install --no-cache-dir --root-user-action=ignore -r /build/recipe/requirements.txt \
  | grep 'already satisfied'
python3 -c 'import runpod; print("runpod", runpod.__version__)'
