"""sendmail(1) and the pickup directory (docs/http-api.md) through the
real binary: `postern sendmail -t` from a shell pipe as cron and PHP use
it, the options cron passes, -bs (the SMTP engine on stdin/stdout),
files dropped into the pickup directory (good ones delivered and
removed, malformed ones and those of users outside the group moved to
bad/ with a log line), and sendmail run by a member and a non-member of
the pickup group (exit 0 / 77)."""
import os
import pwd
import re
import shutil
import subprocess
import tempfile

import pytest

from conftest import BASE_CONFIG, BIN, SANITIZER_RE, Server, wait_for

GROUP = "daemon"        # exists on Debian; its user `daemon` is a member


@pytest.fixture(scope="module")
def pk(tmp_path_factory):
    # the pickup directory and a readable copy of the configuration live
    # in a directory other users can search (pytest's tmp is 0700)
    pub = tempfile.mkdtemp(prefix="postern-pickup-")
    os.chmod(pub, 0o755)
    d = tmp_path_factory.mktemp("pk")
    s = Server(str(d), extra='pickup = { dir = "%s/pickup"; group = "%s"; '
               '};' % (pub, GROUP))
    s.start()
    s.wait_log(r"postern \S+ starting")
    s.pub = pub
    s.pickup = os.path.join(pub, "pickup")
    s.pubconf = os.path.join(pub, "postern.conf")
    with open(s.conf) as fh:
        text = fh.read()
    with open(s.pubconf, "w") as fh:
        fh.write(text.replace('data_dir = "data"',
                              'data_dir = "%s/data"' % d))
    os.chmod(s.pubconf, 0o644)
    # the binary, where other users may run it
    s.pubbin = os.path.join(pub, "postern")
    shutil.copy(BIN, s.pubbin)
    os.chmod(s.pubbin, 0o755)
    yield s
    s.stop()
    text = s.stderr() + s.log()
    shutil.rmtree(pub, ignore_errors=True)
    assert not SANITIZER_RE.search(text), text[-4000:]


def mail_with(s, user, needle, timeout=20):
    def hit():
        for f in s.maildir_files("example.com", user):
            with open(f, "rb") as fh:
                data = fh.read()
            if needle.encode() in data:
                return data.decode(errors="replace")
        return None
    return wait_for(hit, timeout=timeout, what=f"mail for {user}: {needle}")


def test_pickup_directory_modes(pk):
    st = os.stat(pk.pickup)
    assert oct(st.st_mode & 0o7777) == "0o1730"
    import grp
    assert st.st_gid == grp.getgrnam(GROUP).gr_gid
    assert oct(os.stat(os.path.join(pk.pickup, "bad")).st_mode & 0o777) == \
        "0o700"


def test_sendmail_t_from_a_shell_pipe(pk):
    cmd = ("printf 'From: App <app@example.org>\\nTo: bob@example.com\\n"
           "Cc: carol@example.com\\nBcc: dave@example.com\\n"
           "Subject: from php\\n\\nline one\\n.\\nstill body\\n' | "
           f"{BIN} sendmail -c {pk.conf} -t -i")
    p = subprocess.run(cmd, shell=True, capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0, p.stderr
    for user in ("bob", "carol", "dave"):
        data = mail_with(pk, user, "Subject: from php")
    assert "still body" in data and "\nBcc:" not in data
    assert re.search(r"by mx\.test\.example \(Postern, from userid 0 "
                     r"\(root\)\)", data), data
    pk.wait_log(r"New PICKUP ICID \d+ file \S+ uid 0 user root$")
    pk.wait_log(r"MID \d+ ready \d+ bytes from <app@example\.org>$")


def test_sendmail_as_cron_calls_it(pk):
    # Debian cron: sendmail -FCronDaemon -i -B8BITMIME -oem MAILTO, with
    # unqualified addresses in its header
    cmd = ("printf 'From: root (Cron Daemon)\\nTo: bob@example.com\\n"
           "Subject: Cron <root@host> true\\n\\noutput\\n' | "
           f"{BIN} sendmail -c {pk.conf} -FCronDaemon -i -B8BITMIME -oem "
           "bob@example.com")
    p = subprocess.run(cmd, shell=True, capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0, p.stderr
    data = mail_with(pk, "bob", "Cron <root@host> true")
    assert "From: root@mx.test.example (Cron Daemon)" in data
    pk.wait_log(r"From: <root@mx\.test\.example>$")


def test_sendmail_without_recipients_is_a_usage_error(pk):
    p = subprocess.run([BIN, "sendmail", "-c", pk.conf], input="Subject: x"
                       "\n\nx\n", capture_output=True, text=True, timeout=30)
    assert p.returncode == 64
    assert p.stderr.startswith("postern: sendmail: no recipients"), p.stderr
    p = subprocess.run([BIN, "sendmail", "-c", pk.conf, "-bp"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 64 and "-bp is not supported" in p.stderr


def test_sendmail_bs(pk):
    dialogue = ("EHLO app.test\r\nMAIL FROM:<app@example.org>\r\n"
                "RCPT TO:<bob@example.com>\r\nDATA\r\n"
                "Subject: over -bs\r\n\r\nhello\r\n.\r\nQUIT\r\n")
    p = subprocess.run([BIN, "sendmail", "-c", pk.conf, "-bs"],
                       input=dialogue, capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "220 mx.test.example ESMTP Postern"
    assert re.search(r"^250 2\.0\.0 Ok: queued as \d+$", p.stdout, re.M)
    assert lines[-1] == "221 2.0.0 Bye"
    mail_with(pk, "bob", "Subject: over -bs")


def drop(pk, name, text, owner=None):
    tmp = os.path.join(pk.pickup, "." + name)
    with open(tmp, "w") as fh:
        fh.write(text)
    if owner is not None:
        os.chown(tmp, owner, -1)
    os.rename(tmp, os.path.join(pk.pickup, name))


def test_pickup_good_file_with_envelope_fields(pk):
    drop(pk, "good1", "X-Sender: <app@example.org>\r\n"
         "X-Receiver: <erin@example.com>\r\nX-Receiver: frank@example.com\r\n"
         "From: app@example.org\r\nTo: someone@else.example\r\n"
         "Subject: dropped file\r\n\r\nbody\r\n")
    for user in ("erin", "frank"):
        data = mail_with(pk, user, "Subject: dropped file")
    assert "X-Receiver" not in data and "X-Sender" not in data
    wait_for(lambda: not os.path.exists(os.path.join(pk.pickup, "good1")),
             what="good1 removed")
    assert not os.path.exists(os.path.join(pk.pickup, "bad", "good1"))


def test_pickup_malformed_file_goes_to_bad(pk):
    drop(pk, "broken1", "this is not a message\n")
    drop(pk, "broken2", "X-Sender: two words\nSubject: x\n\nx\n")
    pk.wait_log(r"ICID \d+ pickup file broken1 moved to bad/: the message "
                r"does not start with a header field")
    pk.wait_log(r"ICID \d+ pickup file broken2 moved to bad/: X-Sender "
                r"field holds no single address")
    assert os.path.exists(os.path.join(pk.pickup, "bad", "broken1"))
    assert not os.path.exists(os.path.join(pk.pickup, "broken1"))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown")
def test_pickup_file_of_a_user_outside_the_group_goes_to_bad(pk):
    nobody = pwd.getpwnam("nobody").pw_uid
    drop(pk, "intruder", "From: x@example.org\nTo: bob@example.com\n"
         "Subject: intruder\n\nx\n", owner=nobody)
    pk.wait_log(r"ICID \d+ pickup file intruder moved to bad/: owner uid "
                r"%d \(nobody\) is not in group %s" % (nobody, GROUP))


def as_user(user, group):
    return ["setpriv", f"--reuid={user}", f"--regid={group}",
            "--clear-groups"]


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root and setpriv to act as other users")
def test_sendmail_as_member_and_as_outsider(pk):
    msg = "Subject: from user daemon\n\nx\n"
    p = subprocess.run(as_user("daemon", "daemon") + [
        pk.pubbin, "sendmail", "-c", pk.pubconf, "bob@example.com"],
        input=msg, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    data = mail_with(pk, "bob", "Subject: from user daemon")
    assert "from userid 1 (daemon)" in data
    p = subprocess.run(as_user("nobody", "nogroup") + [
        pk.pubbin, "sendmail", "-c", pk.pubconf, "bob@example.com"],
        input="Subject: nope\n\nx\n", capture_output=True, text=True,
        timeout=30)
    assert p.returncode == 77, p.stderr
    assert "only members of group daemon may send mail" in p.stderr
