#!/bin/sh
# Runs inside a container of the rootfs image (no network), with this folder at /build/recipe;
# scripts/images.sh commits the result as rpdeploy-test/systemd-host:1.
set -eu
R=/build/recipe

# A non-root login with passwordless sudo, as on an EC2 host ('*' keeps the account usable by key).
useradd --create-home --uid 1000 --shell /bin/bash deploy
usermod --password '*' deploy
echo 'deploy ALL=(ALL) NOPASSWD:ALL' >/etc/sudoers.d/deploy
chmod 0440 /etc/sudoers.d/deploy
visudo -cf /etc/sudoers.d/deploy
install -d -m 0700 /root/.ssh
install -d -m 0700 -o deploy -g deploy /home/deploy/.ssh

# sshd: key auth only; host keys made here, once per image build.
install -m 0644 "$R/sshd_config.conf" /etc/ssh/sshd_config.d/rpdeploy-test.conf
rm -f /etc/ssh/ssh_host_*
ssh-keygen -A
mkdir -p /run/sshd && sshd -t && rmdir /run/sshd

# The Spring Boot stand-in, as a service of its own user.
useradd --system --no-create-home --home-dir /opt/spring-boot --shell /usr/sbin/nologin spring
install -d -m 0755 /opt/spring-boot
install -m 0644 "$R/app.py" /opt/spring-boot/app.py
install -m 0644 "$R/spring-boot.service" /etc/systemd/system/spring-boot.service
systemctl enable ssh.service spring-boot.service

# Units that only fail or idle in a container: no consoles, no udev, no kernel knobs to set.
systemctl mask getty@tty1.service console-getty.service serial-getty@.service \
  systemd-udevd.service systemd-udev-trigger.service systemd-modules-load.service \
  systemd-sysctl.service systemd-remount-fs.service sys-kernel-config.mount sys-kernel-debug.mount \
  sys-kernel-tracing.mount dev-hugepages.mount systemd-logind.service getty.target

# Every container gets a machine id of its own at boot.
: >/etc/machine-id
