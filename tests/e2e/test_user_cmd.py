"""`postern user add|passwd|modify|remove|list` (postern(8)): the
SMTP credentials in <data_dir>/users.  Passwords are generated, printed
once as `username: NAME` / `password: SECRET` and stored only as a scrypt
hash.  (AUTH in the daemon is tested with the SMTP server, not here.)"""
import base64
import hashlib
import os
import pwd
import re
import shutil
import stat
import subprocess
import tempfile
import time

import pytest

from conftest import BIN, one_error_line, run

PHC_RE = re.compile(r'hash = "(\$scrypt\$ln=(\d+),r=(\d+),p=(\d+)\$'
                    r'([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+))";')
ISO_RE = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


class Env:
    def __init__(self, d, data_dir="data", user="root"):
        self.dir = d
        self.conf = str(d / "postern.conf")
        with open(self.conf, "w") as fh:
            fh.write('hostname = "mx.test.example";\n'
                     f'data_dir = "{data_dir}";\nuser = "{user}";\n')
        self.data = d / data_dir
        self.users = self.data / "users"

    def user(self, *args):
        return run("user", "-c", self.conf, *args, cwd=str(self.dir))

    def add(self, name, *args):
        p = self.user("add", name, *args)
        assert p.returncode == 0, p.stderr
        return secret(p, name)

    def hashes(self):
        """name -> PHC string, read from the users file."""
        text = self.users.read_text()
        names = re.findall(r'name = "([^"]*)";', text)
        hashes = [m.group(1) for m in PHC_RE.finditer(text)]
        assert len(names) == len(hashes), text
        return dict(zip(names, hashes))

    def listing(self):
        p = self.user("list")
        assert p.returncode == 0, p.stderr
        lines = p.stdout.splitlines()
        rows = {}
        for ln in lines[1:]:
            f = ln.split(None, 4)
            rows[f[0]] = f
        return lines, rows


@pytest.fixture
def env(tmp_path):
    return Env(tmp_path)


def secret(p, name):
    """postern(8): exactly the two lines `username: NAME` and `password: SECRET`
    on stdout; the password is 32 characters of [A-Za-z0-9]."""
    lines = p.stdout.split("\n")
    assert len(lines) == 3 and lines[2] == "", p.stdout
    assert lines[0] == f"username: {name}"
    m = re.fullmatch(r"password: ([A-Za-z0-9]{32})", lines[1])
    assert m, p.stdout
    assert m.group(1) not in p.stderr
    return m.group(1)


def b64d(s):
    return base64.b64decode(s + "=" * (-len(s) % 4), validate=True)


def phc_verify(phc, password):
    """Check a stored hash with Python's own scrypt (interoperability)."""
    m = re.fullmatch(r"\$scrypt\$ln=(\d+),r=(\d+),p=(\d+)\$([^$]+)\$([^$]+)",
                     phc)
    assert m, phc
    ln, r, p = (int(x) for x in m.group(1, 2, 3))
    salt, dk = b64d(m.group(4)), b64d(m.group(5))
    got = hashlib.scrypt(password.encode(), salt=salt, n=1 << ln, r=r, p=p,
                         dklen=len(dk), maxmem=64 << 20)
    return got == dk


def test_help_and_usage(env):
    p = run("user", "--help")
    assert p.returncode == 0 and p.stdout.startswith("usage: postern user")
    for sub in ("add NAME", "--identity DOMAIN-OR-ADDRESS", "passwd NAME",
                "modify NAME", "--add-identity", "--remove-identity",
                "--max-send-rate", "--max-24-hour-send", "remove NAME",
                "list"):
        assert sub in p.stdout, sub
    assert run("help", "user").stdout == p.stdout
    assert run("user", "help").stdout == p.stdout
    for sub in ("add", "passwd", "modify", "remove", "list"):
        q = run("user", sub, "--help")
        assert q.returncode == 0 and q.stdout == p.stdout, sub
        q = env.user(sub, "-h")
        assert q.returncode == 0 and q.stdout == p.stdout, sub
    p = run("user")
    assert p.returncode == 2 and p.stderr.startswith("usage: postern user")
    assert not env.data.exists()


@pytest.mark.parametrize("args", [
    ("bogus",),
    ("add",),
    ("add", "a", "b"),
    ("add", "a", "--identity"),
    ("add", "a", "--bogus"),
    ("add", "a", "--add-identity", "example.com"),
    ("add", "a", "--max-send-rate", "-1"),
    ("add", "a", "--max-send-rate", "ten"),
    ("add", "a", "--max-24-hour-send", "99999999999"),
    ("add", "a", "--max-24-hour-send", ""),
    ("passwd",),
    ("passwd", "a", "--identity", "example.com"),
    ("remove",),
    ("remove", "a", "b"),
    ("modify", "a"),
    ("modify", "a", "--identity", "example.com"),
    ("modify", "--add-identity", "example.com"),
    ("list", "extra"),
    ("list", "--max-send-rate", "1"),
])
def test_usage_errors(env, args):
    line = one_error_line(env.user(*args), 2)
    assert "postern user --help" in line
    assert not env.users.exists()


@pytest.mark.parametrize("name", [
    ".hidden", "..", "a/b", "../../etc/passwd", "a b", "x" * 65, "tab\tx",
    "\u00e9t\u00e9"])
def test_invalid_name(env, name):
    for sub in ("add", "passwd", "remove"):
        line = one_error_line(env.user(sub, name), 2)
        assert "not a valid user name" in line
    assert not env.users.exists()


@pytest.mark.parametrize("ident", [
    "com", ".com", "example..com", "-x.example.com", "*.example.com",
    "@example.com", "alice@", "a@b@example.com", '"a"@example.com',
    "al ice@example.com", "alice@[192.0.2.1]", "example.com."])
def test_invalid_identity(env, ident):
    line = one_error_line(env.user("add", "alice", "--identity", ident), 2)
    assert ident in line and "identity" in line
    env.add("bob")
    for opt in ("--add-identity", "--remove-identity"):
        one_error_line(env.user("modify", "bob", opt, ident), 2)
    assert list(env.hashes()) == ["bob"]


def test_add(env):
    p = env.user("add", "alice", "--identity", "Example.COM",
                 "--identity", "Bob@Other.org", "--max-send-rate", "10",
                 "--max-24-hour-send", "50000")
    assert p.returncode == 0, p.stderr
    pw = secret(p, "alice")
    assert "only once" in p.stderr
    assert "cannot send" not in p.stderr

    # the store: 0600, a scrypt hash that matches, never the password
    st = os.stat(env.users)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert stat.S_IMODE(os.stat(env.data).st_mode) == 0o700
    text = env.users.read_text()
    assert pw not in text
    h = env.hashes()["alice"]
    assert h.startswith("$scrypt$ln=14,r=8,p=1$")
    assert "=" not in h.split("$")[3] + h.split("$")[4]
    assert len(b64d(h.split("$")[3])) == 16 and len(b64d(h.split("$")[4])) == 32
    assert phc_verify(h, pw)
    assert not phc_verify(h, pw[:-1])
    assert '"example.com"' in text and '"bob@other.org"' in text
    assert "max_send_rate = 10;" in text
    assert "max_24_hour_send = 50000;" in text
    # nothing else was left behind (no temporary files, no password)
    assert sorted(os.listdir(env.data)) == ["users", "users.lock"]
    for root, _dirs, files in os.walk(env.dir):
        for f in files:
            with open(os.path.join(root, f), "rb") as fh:
                assert pw.encode() not in fh.read(), f

    # two adds never give the same password
    pw2 = env.add("carol", "--identity", "example.com")
    assert pw2 != pw
    assert env.hashes()["carol"] != h


def test_add_without_identity_notes_it(env):
    p = env.user("add", "svc")
    assert p.returncode == 0
    secret(p, "svc")
    assert "only once" in p.stderr
    assert "cannot send" in p.stderr
    assert "postern user modify svc --add-identity" in p.stderr
    _, rows = env.listing()
    assert rows["svc"][1] == "(none)"


def test_add_duplicate(env):
    env.add("alice", "--identity", "example.com")
    before = env.users.read_bytes()
    line = one_error_line(env.user("add", "alice"))
    assert "alice exists already" in line
    assert "postern user passwd alice" in line
    assert env.users.read_bytes() == before
    # names are case-sensitive: a different user
    env.add("Alice")
    assert sorted(env.hashes()) == ["Alice", "alice"]


def test_list(env):
    p = env.user("list")
    assert p.returncode == 0, p.stderr
    assert "no users" in p.stdout and "postern user add" in p.stdout
    assert not env.data.exists()        # listing creates nothing

    env.add("alice", "--identity", "example.com", "--identity",
            ".corp.example", "--identity", "bob@other.org",
            "--max-send-rate", "10", "--max-24-hour-send", "50000")
    env.add("svc")
    env.add("rate-only", "--identity", "x.example", "--max-send-rate", "3")
    env.add("day-only", "--identity", "x.example", "--max-24-hour-send",
            "200")
    lines, rows = env.listing()
    assert lines[0].split() == ["NAME", "IDENTITIES", "CREATED", "LAST-USED",
                                "QUOTAS"]
    assert len(lines) == 5
    a = rows["alice"]
    assert a[1] == "example.com,.corp.example,bob@other.org"
    assert re.fullmatch(ISO_RE, a[2])
    created = time.strptime(a[2], "%Y-%m-%dT%H:%M:%SZ")
    assert abs(time.mktime(created) - time.mktime(time.gmtime())) < 120
    assert a[3] == "never"
    assert a[4] == "rate 10/s, 24h 50000"
    assert rows["svc"][1] == "(none)" and rows["svc"][4] == "unlimited"
    assert rows["rate-only"][4] == "rate 3/s"
    assert rows["day-only"][4] == "24h 200"

    # last used: the mtime of <data_dir>/users.used/NAME (the daemon
    # touches it on a successful AUTH)
    used = env.data / "users.used"
    used.mkdir(mode=0o700)
    (used / "alice").touch()
    os.utime(used / "alice", (1763891029, 1763891029))
    _, rows = env.listing()
    assert rows["alice"][3] == "2025-11-23T09:43:49Z"
    assert rows["svc"][3] == "never"


def test_passwd(env):
    old = env.add("alice", "--identity", "example.com")
    h_old = env.hashes()["alice"]
    p = env.user("passwd", "alice")
    assert p.returncode == 0, p.stderr
    new = secret(p, "alice")
    assert "only once" in p.stderr
    assert new != old
    h_new = env.hashes()["alice"]
    assert h_new != h_old
    assert phc_verify(h_new, new) and not phc_verify(h_new, old)
    assert new not in env.users.read_text()
    # everything else stays
    _, rows = env.listing()
    assert rows["alice"][1] == "example.com"
    line = one_error_line(env.user("passwd", "nobody-here"))
    assert "no such user" in line and "postern user list" in line


def test_remove(env):
    env.add("alice", "--identity", "example.com")
    env.add("bob", "--identity", "example.com")
    used = env.data / "users.used"
    used.mkdir(mode=0o700)
    (used / "alice").touch()
    p = env.user("remove", "alice")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "removed user alice\n"
    assert list(env.hashes()) == ["bob"]
    assert not (used / "alice").exists()
    assert stat.S_IMODE(os.stat(env.users).st_mode) == 0o600
    line = one_error_line(env.user("remove", "alice"))
    assert "no such user" in line
    # a new alice starts as never used
    env.add("alice")
    _, rows = env.listing()
    assert rows["alice"][3] == "never"


def test_modify(env):
    env.add("alice", "--identity", "example.com", "--max-send-rate", "5")
    p = env.user("modify", "alice", "--add-identity", "Bob@Other.ORG",
                 "--add-identity", ".corp.example", "--max-24-hour-send",
                 "1000")
    assert p.returncode == 0, p.stderr
    assert "bob@other.org" in p.stdout and "rate 5/s, 24h 1000" in p.stdout
    _, rows = env.listing()
    assert rows["alice"][1] == "example.com,bob@other.org,.corp.example"
    assert rows["alice"][4] == "rate 5/s, 24h 1000"

    # adding one that is there already changes nothing
    assert env.user("modify", "alice", "--add-identity",
                    "EXAMPLE.com").returncode == 0
    _, rows = env.listing()
    assert rows["alice"][1] == "example.com,bob@other.org,.corp.example"

    # removing one that is not there: exit 1, the current list, no change
    before = env.users.read_bytes()
    line = one_error_line(env.user("modify", "alice", "--remove-identity",
                                   "other.org"))
    assert "no identity other.org" in line
    assert "example.com,bob@other.org,.corp.example" in line
    assert env.users.read_bytes() == before
    # ... also when another change in the same command was fine
    one_error_line(env.user("modify", "alice", "--remove-identity",
                            "example.com", "--remove-identity", "nope.example"))
    assert env.users.read_bytes() == before

    p = env.user("modify", "alice", "--remove-identity", "Example.com",
                 "--remove-identity", "bob@other.org", "--max-send-rate", "0")
    assert p.returncode == 0, p.stderr
    _, rows = env.listing()
    assert rows["alice"][1] == ".corp.example"
    assert rows["alice"][4] == "24h 1000"
    p = env.user("modify", "alice", "--remove-identity", ".corp.example",
                 "--max-24-hour-send", "0")
    assert p.returncode == 0
    assert "cannot send" in p.stderr
    _, rows = env.listing()
    assert rows["alice"][1] == "(none)" and rows["alice"][4] == "unlimited"
    line = one_error_line(env.user("modify", "alice", "--remove-identity",
                                   "example.com"))
    assert "(none)" in line

    line = one_error_line(env.user("modify", "ghost", "--add-identity",
                                   "example.com"))
    assert "no such user" in line


def test_option_order_and_config_position(env):
    # -c before or after the subcommand, options before or after NAME
    p = run("user", "add", "--identity", "example.com", "alice", "-c",
            env.conf, cwd=str(env.dir))
    assert p.returncode == 0, p.stderr
    secret(p, "alice")
    p = run("user", "-c", env.conf, "modify", "--max-send-rate", "7", "alice",
            cwd=str(env.dir))
    assert p.returncode == 0, p.stderr
    _, rows = env.listing()
    assert rows["alice"][1] == "example.com" and rows["alice"][4] == "rate 7/s"
    # a name that looks like an option, after --
    p = env.user("add", "--", "-dash")
    assert p.returncode == 0, p.stderr
    secret(p, "-dash")


def test_broken_store_is_reported_with_line(env):
    env.add("alice")
    text = env.users.read_text()
    env.users.write_text(text.replace("max_send_rate", "colour", 1))
    line_no = [i for i, ln in enumerate(env.users.read_text().splitlines(), 1)
               if "colour" in ln][0]
    for args in (("list",), ("add", "bob"), ("passwd", "alice"),
                 ("remove", "alice"),
                 ("modify", "alice", "--add-identity", "example.com")):
        line = one_error_line(env.user(*args))
        assert f"{env.users}:{line_no}: unknown key 'colour'" in line, line
    env.users.write_text("users = ( { name = \"a\" \n")
    line = one_error_line(env.user("list"))
    assert f"{env.users}:" in line
    # a plain-text password is never accepted as a hash
    env.users.write_text('users = ( { name = "a"; hash = "hunter2"; } );\n')
    line = one_error_line(env.user("add", "b"))
    assert "not a scrypt hash" in line
    assert "hunter2" in env.users.read_text()      # untouched


def test_missing_config_fails(env):
    p = run("user", "-c", str(env.dir / "nope.conf"), "list",
            cwd=str(env.dir))
    # conf.c reports configuration problems as "FILE: message"
    assert p.returncode == 1, p.stderr
    assert len(p.stderr.splitlines()) == 1 and "nope.conf" in p.stderr
    assert not (env.dir / "data").exists()


def test_data_dir_cannot_be_created(tmp_path):
    (tmp_path / "afile").write_text("not a directory\n")
    env = Env(tmp_path, data_dir="afile/data")
    line = one_error_line(env.user("add", "alice"))
    assert "cannot add user alice" in line and "afile/data" in line
    line = one_error_line(env.user("list"))
    assert "cannot list users" in line


def test_concurrent_adds_lose_nothing(env):
    env.add("first")
    names = [f"u{i}" for i in range(8)]
    procs = [subprocess.Popen([BIN, "user", "-c", env.conf, "add", n,
                               "--identity", "example.com"],
                              cwd=str(env.dir), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for n in names]
    outs = [(p.communicate(timeout=60), p.returncode) for p in procs]
    for (out, err), rc in outs:
        assert rc == 0, err
    assert sorted(env.hashes()) == sorted(names + ["first"])
    pws = set(re.search(r"password: (\S+)", out).group(1)
              for (out, _err), _rc in outs)
    assert len(pws) == 8
    # and concurrent modifies of one user keep every identity
    procs = [subprocess.Popen([BIN, "user", "-c", env.conf, "modify",
                               "first", "--add-identity",
                               f"d{i}.example"], cwd=str(env.dir),
                              stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
             for i in range(8)]
    for p in procs:
        assert p.wait(timeout=60) == 0
    _, rows = env.listing()
    assert sorted(rows["first"][1].split(",")) == \
        sorted(f"d{i}.example" for i in range(8))


def test_store_owned_by_configured_user():
    """Run as root with user = "nobody": the store and its lock belong to
    nobody, so the daemon (running as that user) can read them."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user nobody")
    d = tempfile.mkdtemp(prefix="postern-user-")
    try:
        os.chmod(d, 0o711)
        data = os.path.join(d, "data")
        os.mkdir(data, 0o700)
        os.chown(data, nobody.pw_uid, nobody.pw_gid)
        conf = os.path.join(d, "postern.conf")
        with open(conf, "w") as fh:
            fh.write(f'hostname = "mx.test.example";\ndata_dir = "{data}";\n'
                     'user = "nobody";\n')
        p = run("user", "-c", conf, "add", "alice", "--identity",
                "example.com", cwd=d)
        assert p.returncode == 0, p.stderr
        secret(p, "alice")
        for f in ("users", "users.lock"):
            st = os.stat(os.path.join(data, f))
            assert (st.st_uid, stat.S_IMODE(st.st_mode)) == \
                (nobody.pw_uid, 0o600), f
        assert run("user", "-c", conf, "remove", "alice",
                   cwd=d).returncode == 0
        assert os.stat(os.path.join(data, "users")).st_uid == nobody.pw_uid
    finally:
        shutil.rmtree(d)
