"""The Debian package (`make deb`, debian/, tools/build-deb.sh): what it
holds, that lintian found nothing, and that the postern it installs runs:
the .deb is unpacked with `dpkg-deb -x` into a tmp dir, and that tree's
postern serves a test configuration (free port, tmp data dir) and delivers
one message.  The package is the one `make test` builds once before the
end-to-end tests (build/deb/); when it is missing it is built here, once
for all pytest workers (a lock file)."""
import fcntl
import glob
import os
import re
import shutil
import smtplib
import subprocess

import pytest

from conftest import systemd_analyze

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEB_DIR = os.environ.get("POSTERN_DEB_DIR") or os.path.join(REPO, "build",
                                                            "deb")


def changelog_version():
    with open(os.path.join(REPO, "debian", "changelog")) as fh:
        return re.match(r"postern \(([^)]+)\)", fh.readline()).group(1)


@pytest.fixture(scope="session")
def deb():
    os.makedirs(DEB_DIR, exist_ok=True)
    pattern = os.path.join(DEB_DIR, "postern_%s_*.deb" % changelog_version())
    with open(os.path.join(DEB_DIR, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not glob.glob(pattern):
            p = subprocess.run(["sh", os.path.join(REPO, "tools",
                                                   "build-deb.sh"), DEB_DIR],
                               capture_output=True, text=True, timeout=900)
            assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]
    (path,) = glob.glob(pattern)
    return path


@pytest.fixture(scope="module")
def tree(deb, tmp_path_factory):
    """The package unpacked (dpkg-deb -x): a root file system."""
    root = str(tmp_path_factory.mktemp("debroot"))
    subprocess.run(["dpkg-deb", "-x", deb, root], check=True, timeout=60)
    return root


def deb_field(deb, *args):
    return subprocess.run(["dpkg-deb", *args, deb], capture_output=True,
                          text=True, check=True, timeout=60).stdout


def test_package_contents(deb, tree):
    for path in ("usr/sbin/postern", "etc/postern/postern.conf",
                 "etc/logrotate.d/postern",
                 "lib/systemd/system/postern.service",
                 "usr/share/man/man8/postern.8.gz",
                 "usr/share/man/man5/postern.conf.5.gz",
                 "usr/share/man/man7/postern-log.7.gz",
                 "usr/share/doc/postern/copyright"):
        assert os.path.exists(os.path.join(tree, path)), path
    # directories that need their owner are made by postinst, not shipped
    assert not os.path.exists(os.path.join(tree, "var"))
    p = subprocess.run([os.path.join(tree, "usr/sbin/postern"), "--version"],
                       capture_output=True, text=True, timeout=30)
    assert p.stdout.strip() == "postern " + changelog_version()

    assert deb_field(deb, "--field").count("Depends: adduser") == 1
    ctrl = os.path.join(os.path.dirname(tree), "ctrl")
    subprocess.run(["dpkg-deb", "-e", deb, ctrl], check=True, timeout=60)
    with open(os.path.join(ctrl, "conffiles")) as fh:
        assert set(fh.read().split()) == {"/etc/postern/postern.conf",
                                          "/etc/logrotate.d/postern"}
    with open(os.path.join(ctrl, "postinst")) as fh:
        postinst = fh.read()
    assert "adduser --system --group" in postinst
    assert "deb-systemd-helper enable 'postern.service'" in postinst
    # started only once the example's hostname is gone
    assert 'mx\\.example\\.com' in postinst
    assert "deb-systemd-invoke restart postern.service" in postinst
    with open(os.path.join(ctrl, "postrm")) as fh:
        assert "rm -rf /var/lib/postern /var/log/postern" in fh.read()
    # the unpacked configuration is the example, with that hostname
    with open(os.path.join(tree, "etc/postern/postern.conf")) as fh:
        assert re.search(r'^hostname += "mx\.example\.com";', fh.read(),
                         re.M)


def test_lintian_found_no_error_and_no_warning(deb):
    with open(os.path.join(os.path.dirname(deb), "lintian.log")) as fh:
        tags = [ln for ln in fh.read().splitlines()
                if re.match(r"^[EW]: ", ln)]
    assert tags == []


def test_packaged_configuration_checks_clean(tree):
    p = subprocess.run([os.path.join(tree, "usr/sbin/postern"), "config",
                        "check", "-c", os.path.join(tree,
                                                    "etc/postern/postern.conf")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.strip().endswith("configuration OK")


def test_packaged_postern_delivers_a_message(tree, server_factory):
    s = server_factory(bin=os.path.join(tree, "usr/sbin/postern")).start()
    msg = ("From: a@example.org\r\nTo: bob@example.com\r\n"
           "Subject: from the package\r\n\r\nhello\r\n")
    with smtplib.SMTP("127.0.0.1", s.port, timeout=15) as c:
        c.sendmail("a@example.org", ["bob@example.com"], msg)
    (path,) = s.wait_maildir("example.com", "bob")
    with open(path, "rb") as fh:
        assert b"Subject: from the package" in fh.read()
    assert os.path.realpath(os.readlink("/proc/%d/exe" % s.proc.pid)) == \
        os.path.realpath(os.path.join(tree, "usr/sbin/postern"))


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is missing (Debian: systemd)")
def test_packaged_unit_passes_systemd_analyze(tree):
    verify, security, exposure, rating = systemd_analyze(tree)
    assert verify.returncode == 0 and verify.stderr.strip() == "", \
        verify.stderr
    assert security.returncode == 0 and exposure <= 2.5 and rating == "OK", \
        security.stdout


def test_install_script_never_overwrites_the_configuration(tmp_path):
    """dist/install-local.sh (the end of `make install`) under DESTDIR:
    the example becomes etc/postern/postern.conf once, an existing one is
    kept, the data and log directories are made; nothing is chowned and no
    user is made under DESTDIR."""
    script = os.path.join(REPO, "dist", "install-local.sh")
    example = os.path.join(REPO, "docs", "postern.conf.example")
    dest = tmp_path / "dest"
    env = dict(os.environ, DESTDIR=str(dest))
    env.pop("MESON_BUILD_ROOT", None)
    args = ["sh", script, example, "/etc/postern", "/var/lib/postern",
            "/var/log/postern"]
    p = subprocess.run(args, env=env, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    conf = dest / "etc" / "postern" / "postern.conf"
    with open(example) as fh:
        assert conf.read_text() == fh.read()
    assert "installed the example configuration" in p.stdout
    assert oct(os.stat(dest / "var/lib/postern").st_mode & 0o777) == "0o700"
    assert oct(os.stat(dest / "var/log/postern").st_mode & 0o777) == "0o750"

    conf.write_text(conf.read_text().replace("mx.example.com",
                                             "mx.mine.example"))
    mine = conf.read_text()
    p = subprocess.run(args, env=env, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    assert conf.read_text() == mine
    assert "kept the existing" in p.stdout
