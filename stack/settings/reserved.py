"""What the user may not name: app names that are the host's own, environment variables that
something other than the app interprets.

The app's name becomes a system user, `/etc/<name>`, `/var/lib/<name>`, `/run/<name>`,
`/srv/<name>` and the units `<name>.service` and `<name>.socket`. A name the host already uses
for any of those would replace the host's own (a unit over `systemd-resolved.service`, files
over `/etc/ssl`, a second owner of `/var/lib/dpkg`), so such names are refused before anything
is declared. The list was taken from a Debian 12 host with every package the hosts get
(`ls /etc /var/lib /run`, the unit files, /etc/passwd and /etc/group) and from the units of the
Debian and Ubuntu cloud images on EC2 and DigitalOcean (cloud-init, the agents, snapd), plus
whole families by prefix. It cannot know every host: the bootstrap step refuses a unit it did
not write, whatever the name.
"""

from __future__ import annotations

import re

# Users, groups, unit names, and directories of /etc, /var/lib and /run on the images.
HOST_NAMES = frozenset("""
    root daemon bin sys sync games man lp mail news uucp proxy www-data backup list irc nobody
    nogroup adm tty disk kmem dialout fax voice cdrom floppy tape sudo audio dip operator src
    shadow utmp video sasl plugdev staff users ssl-cert messagebus polkitd syslog uuidd tcpdump
    tss landscape lxd pollinate fwupd-refresh usbmux dnsmasq avahi rtkit sshd
    admin ubuntu debian deploy ec2-user centos fedora
    nginx haproxy certbot letsencrypt postgres postgresql postgresql-common python3 pip
    apache2 lighttpd httpd varnish memcached redis redis-server docker containerd podman
    ssh openssh sshd-keygen ssh-agent sudoers
    systemd journal journald udev dbus polkit cron anacron atd rsyslog logrotate rsync
    networking network network-manager networkd resolved timesyncd hostname hostnamed
    chrony chronyd ntp ntpd ntpsec openntpd ufw apparmor nftables iptables firewalld fail2ban
    unattended-upgrades apt dpkg debconf ucf man-db alternatives default environment security
    ssl ca-certificates pam skel profile opt init rc rcs emergency rescue reboot poweroff halt
    shutdown getty console kmod procps quotaon hwclock fstrim e2scrub cryptdisks modprobe
    packagekit snapd snap lxcfs multipathd iscsid open-iscsi udisks2 accounts-daemon
    networkd-dispatcher modemmanager irqbalance thermald qemu-guest-agent open-vm-tools
    cloud-init cloud-config cloud-final amazon-ssm-agent ec2-instance-connect droplet-agent
    do-agent google-guest-agent walinuxagent
    lock log shm user users tmp var run srv etc lib usr home boot dev proc mnt media machines
    private portables misc git vim xml-core sgml-base app-info swcatalog dhcp x11 xdg
""".split())  # noqa: SIM905 - a word list reads best as words

# Families: systemd's own units and users, D-Bus names, login consoles, package tooling.
HOST_PREFIXES = ("systemd", "dbus", "getty", "initrd", "apt-", "dpkg", "cloud-", "snap",
                 "serial-getty", "container-getty", "user-runtime", "postgresql", "nginx",
                 "haproxy", "certbot", "ssh", "x11", "pg-")


def host_name_problem(name: str) -> str | None:
    """Why `name` cannot be the app's name on a host, or None."""
    if name in HOST_NAMES:
        return (f'"{name}" is already the name of something on the hosts (a system user, unit or '
                f'directory); the app would replace it. Pick another, e.g. "my-{name}"')
    family = next((p for p in HOST_PREFIXES if name.startswith(p)), None)
    if family:
        return (f'"{name}" starts with "{family}", the name of the host\'s own units and users; '
                f'the app must not be mistaken for them. Pick another, e.g. "app-{name}"')
    return None


# Environment variables something other than the app reads, each with what to set instead.
_GUNICORN = ("Gunicorn reads it and it would override the checked gunicorn.conf.py "
             "(workers, timeout, bind, forwarded headers)")
ENV_OWNERS: dict[str, str] = {
    "GUNICORN_CMD_ARGS": f"{_GUNICORN}; set app.workers, app.timeout, app.listen and the "
                         "other app.* keys instead",
    "FORWARDED_ALLOW_IPS": f"{_GUNICORN}; the stack trusts forwarded headers only from the "
                           "load balancer (hosts.trustedProxies on existing servers)",
    "WEB_CONCURRENCY": f"{_GUNICORN}; set app.workers",
    "SENDFILE": f"{_GUNICORN}; the front serves static files (app.staticDir)",
    "SERVER_SOFTWARE": "Gunicorn sets it",
    "DATABASE_URL": "the program sets it (the stack's database, or database.url on "
                    "existing servers)",
    "PATH": "systemd sets it (the release command gets the release's virtualenv first); "
            "call programs by their path, or install them with the app's requirements",
    "HOME": "systemd sets it for the app's user",
    "USER": "systemd sets it for the app's user",
    "LOGNAME": "systemd sets it for the app's user",
    "SHELL": "systemd sets it for the app's user",
    "GLIBC_TUNABLES": "the C library reads it at the start of every process (and it has carried "
                      "privilege-escalation bugs); tune memory with MALLOC_ARENA_MAX instead",
}
ENV_OWNER_PREFIXES: dict[str, str] = {
    "GUNICORN_": _GUNICORN,
    "PYTHON": "Python reads it before the app starts (module search path, startup code, hash "
              "seed, warnings); the release's virtualenv and app.entry decide what runs",
    "LD_": "the dynamic loader reads it in every process (LD_PRELOAD loads code into Gunicorn)",
    "LISTEN_": "systemd sets it to hand Gunicorn its socket",
    "NOTIFY_SOCKET": "systemd sets it",
    "SYSTEMD_": "systemd reads it",
    "INVOCATION_ID": "systemd sets it",
    "JOURNAL_STREAM": "systemd sets it",
    "WATCHDOG_": "systemd sets it",
    "MAINPID": "systemd sets it",
    "MANAGERPID": "systemd sets it",
    "RUNTIME_DIRECTORY": "systemd sets it",
    "STATE_DIRECTORY": "systemd sets it to the app's state directory (/var/lib/<app.name>)",
    "CACHE_DIRECTORY": "systemd sets it",
    "LOGS_DIRECTORY": "systemd sets it",
    "CONFIGURATION_DIRECTORY": "systemd sets it",
    "CREDENTIALS_DIRECTORY": "systemd sets it",
    "FLASK_STACK_": "the program sets it",
}


# What Heroku sets in every dyno, on top of the names above (devcenter.heroku.com/articles/
# dynos#local-environment-variables and dyno-metadata).
HEROKU_ENV_OWNERS: dict[str, str] = {
    "PORT": "Heroku sets it to the port the dyno's Gunicorn must bind",
    "DYNO": "Heroku sets it to the dyno's name (web.1)",
    "HEROKU_": "Heroku sets the HEROKU_* names (dyno metadata, the app's name and release)",
}


def heroku_env_owner(name: str) -> str | None:
    return next((why for prefix, why in HEROKU_ENV_OWNERS.items()
                 if name == prefix or prefix.endswith("_") and name.startswith(prefix)), None)


# Python variables that change how output and errors come out, never what code runs.
PYTHON_HARMLESS = frozenset({"PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PYTHONFAULTHANDLER",
                             "PYTHONIOENCODING", "PYTHONUTF8"})


def env_owner(name: str) -> str | None:
    """Who else reads or sets the environment variable `name` (and what to do), or None."""
    if name in PYTHON_HARMLESS:
        return None
    if name in ENV_OWNERS:
        return ENV_OWNERS[name]
    return next((why for prefix, why in ENV_OWNER_PREFIXES.items() if name.startswith(prefix)),
                None)


# The end of a name that holds a credential (SECRET_KEY, GITHUB_TOKEN, DB_PASSWORD, ...).
SECRET_NAME = re.compile(
    r"(^|_)(SECRET|SECRET_KEY|PASSWORD|PASSWD|PASSPHRASE|TOKEN|API_KEY|APIKEY|PRIVATE_KEY|"
    r"ACCESS_KEY|SECRET_ACCESS_KEY|CLIENT_SECRET|CREDENTIALS?|AUTH_KEY|SIGNING_KEY)$",
    re.IGNORECASE)
# A URL with a password in it (redis://:pw@host, postgresql://user:pw@host/db).
URL_WITH_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@\s]*:[^/@\s]+@", re.IGNORECASE)


def looks_secret(name: str, value: str) -> str | None:
    """Why a plain app.env entry looks like a credential, or None."""
    if SECRET_NAME.search(name):
        return "its name says it holds a credential"
    if URL_WITH_PASSWORD.match(value):
        return "its value is a URL with a password in it"
    if "PRIVATE KEY-----" in value:
        return "its value is a private key"
    return None
