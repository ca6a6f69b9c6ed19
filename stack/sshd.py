"""What the hosts' sshd accepts (templates/ssh/sshd.conf.j2, installed by the bootstrap step):
public keys only, no root login, only the deploy's login user, and key exchange, ciphers and MACs
from Mozilla's "modern" OpenSSH guideline, as far as Debian 12's OpenSSH 9.2 has them.

The deploy's own clients must be able to agree on each list: pulumi-command (Go's x/crypto/ssh:
curve25519-sha256, the AEAD ciphers) and OpenSSH (the ops verbs and the tests).
"""

from __future__ import annotations

from stack.settings import Settings

# Post-quantum hybrid first (OpenSSH 9.0+), then X25519 and the NIST curves, then DH group
# exchange with SHA-256; no SHA-1 and no fixed 1024/2048-bit groups.
KEX = ("sntrup761x25519-sha512@openssh.com", "curve25519-sha256", "curve25519-sha256@libssh.org",
       "ecdh-sha2-nistp521", "ecdh-sha2-nistp384", "ecdh-sha2-nistp256",
       "diffie-hellman-group-exchange-sha256")
# AEAD first; CTR with an encrypt-then-MAC below; no CBC, no 3DES.
CIPHERS = ("chacha20-poly1305@openssh.com", "aes256-gcm@openssh.com", "aes128-gcm@openssh.com",
           "aes256-ctr", "aes192-ctr", "aes128-ctr")
# Encrypt-then-MAC only (with the AEAD ciphers no MAC is used at all); no SHA-1, no MD5.
MACS = ("hmac-sha2-512-etm@openssh.com", "hmac-sha2-256-etm@openssh.com", "umac-128-etm@openssh.com")
# Every key Debian makes, ed25519 first. Not narrowed to ed25519: a host key pinned from an
# earlier contact (ssh.hostKey, hosts.hostKeys) may be another type, and the client picks which.
HOST_KEYS = ("/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/ssh_host_ecdsa_key", "/etc/ssh/ssh_host_rsa_key")


def root_login(user: str) -> str:
    """PermitRootLogin: "no", unless the deploy logs in as root (a DigitalOcean droplet's only
    login, some existing servers'): then root by key only ("prohibit-password"), since refusing
    it would lock the deploy out of its own host."""
    return "prohibit-password" if user == "root" else "no"


def context(settings: Settings) -> dict:
    from stack.render import token

    user = settings.ssh.user
    token("ssh.user", user or None, "login")  # none: a platform without hosts (no such file)
    return {"user": user, "root_login": root_login(user), "kex": ",".join(KEX),
            "ciphers": ",".join(CIPHERS), "macs": ",".join(MACS), "host_keys": HOST_KEYS}


def expected(settings: Settings) -> dict[str, str]:
    """What `sshd -T` must print (keyword: value) once the drop-in is in place; the bootstrap
    step checks the staged config against it, so a main config that does not include the drop-in
    first (or overrides it) fails the step instead of silently keeping passwords on."""
    user = settings.ssh.user
    return {"passwordauthentication": "no", "kbdinteractiveauthentication": "no",
            "permitrootlogin": root_login(user).replace("prohibit-password", "without-password"),
            "allowusers": user, "pubkeyauthentication": "yes", "kexalgorithms": ",".join(KEX),
            "ciphers": ",".join(CIPHERS)}
