/**
 * The installed system's first-boot report, the same for an image's seed and an installer's
 * template: a oneshot unit runs a script that posts `booted` with the job's token to the job's
 * callback (both in /etc/racksmith/firstboot.env), then deletes that file, so it reports once.
 * An install that carries it ends `active` only when the report arrives. A post-install script
 * (/etc/racksmith/post-install, from the install's `postInstallScript`) runs first, once, for at
 * most an hour; its exit code and the tail of its output go into the report, so the job log shows them.
 */

export const FIRST_BOOT_SCRIPT = `#!/bin/sh
# racksmith: the first boot of an installed system runs the customer's post-install script (once),
# reports to its install job (once), then forgets the token.
set -u
etc=\${RACKSMITH_ETC:-/etc/racksmith}
env=$etc/firstboot.env
[ -r "$env" ] || exit 0
. "$env"
host=$(hostname)
note=""
if [ -f "$etc/post-install" ]; then
  log=\${RACKSMITH_POST_LOG:-/var/log/racksmith-post-install.log}
  chmod 700 "$etc/post-install"
  echo "racksmith: running the post-install script"
  timeout 3600 "$etc/post-install" >"$log" 2>&1 </dev/null
  rc=$?
  mv "$etc/post-install" "$etc/post-install.done"
  # The output's tail, made safe for a JSON string: printable ASCII only, no quotes or backslashes.
  tail=$(tail -c 600 "$log" | tr '\\n\\t' '  ' | LC_ALL=C tr -cd ' -~' | tr -d '"\\\\')
  note="; post-install script exited $rc (output in $log): $tail"
fi
i=0
while [ $i -lt 60 ]; do
  if curl -fsS -m 10 -H 'Content-Type: application/json' \\
      --data "{\\"token\\":\\"$RACKSMITH_TOKEN\\",\\"status\\":\\"booted\\",\\"message\\":\\"first boot of $host$note\\"}" "$RACKSMITH_CALLBACK" >/dev/null; then
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
