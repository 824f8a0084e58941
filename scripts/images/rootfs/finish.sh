#!/bin/sh
# Trims a fresh debootstrap tree ($1) into the shared rootfs of the test images: no host
# identity (ssh host keys, machine id, resolv.conf), no package lists or docs.
set -eu
R=$1
rm -f "$R"/etc/ssh/ssh_host_* "$R"/var/lib/dbus/machine-id
: >"$R/etc/machine-id"
echo localhost >"$R/etc/hostname"
rm -f "$R/etc/resolv.conf"
rm -rf "$R"/var/lib/apt/lists/* "$R"/var/cache/apt/*.bin "$R"/var/cache/apt/archives/*.deb \
  "$R"/var/log/*.log "$R"/var/log/apt/* "$R"/usr/share/doc/* "$R"/usr/share/man/* "$R"/usr/share/info/*
find "$R/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
