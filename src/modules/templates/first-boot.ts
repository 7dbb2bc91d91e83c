/**
 * The installed system's first-boot report, the same for an image's seed and an installer's
 * template: a oneshot unit runs a script that posts `booted` with the job's token to the job's
 * callback (both in /etc/racksmith/firstboot.env), then deletes that file, so it reports once.
 * An install that carries it ends `active` only when the report arrives.
 */

export const FIRST_BOOT_SCRIPT = `#!/bin/sh
# racksmith: the first boot of an installed system reports to its install job (once), then forgets the token.
set -u
env=/etc/racksmith/firstboot.env
[ -r "$env" ] || exit 0
. "$env"
host=$(hostname)
i=0
while [ $i -lt 60 ]; do
  if curl -fsS -m 10 -H 'Content-Type: application/json' \\
      --data "{\\"token\\":\\"$RACKSMITH_TOKEN\\",\\"status\\":\\"booted\\",\\"message\\":\\"first boot of $host\\"}" "$RACKSMITH_CALLBACK" >/dev/null; then
    rm -f "$env"
    echo "racksmith: first boot reported"
    exit 0
  fi
  i=$((i + 1)); sleep 5
done
echo "racksmith: could not report the first boot" >&2
exit 1
`;

export const FIRST_BOOT_UNIT = `[Unit]
Description=racksmith: report the first boot to the install job
Wants=network-online.target
After=network-online.target ssh.service
ConditionPathExists=/etc/racksmith/firstboot.env

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/racksmith-firstboot
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
`;

/** /etc/racksmith/firstboot.env: where the report goes and its token (shell-quoted: neither holds a quote). */
export const firstBootEnv = (url: string, token: string) => `RACKSMITH_CALLBACK='${url}'\nRACKSMITH_TOKEN='${token}'\n`;

/** The JSON callback the report posts to. */
export const firstBootUrl = (callbackBase: string, jobId: string) => `${callbackBase}/api/v1/install-callbacks/${jobId}`;
