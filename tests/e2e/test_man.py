"""The man pages (docs/man/*.scd, built by meson into <build>/docs/man/)
and the binary say the same: every command `postern help` lists has its
section in postern(8), naming every subcommand and every option that
`postern CMD --help` and `postern CMD SUB --help` print; every section of
postern(8)'s COMMANDS is a real command; every key `postern config show`
prints (for a configuration that sets every section) is an entry of
postern.conf(5); the configurations postern.conf(5) shows as EXAMPLE and
EMBEDDED DEFAULT are valid, and the latter is the embedded default."""
import os
import re

import pytest

from conftest import BIN, run

MAN = os.path.join(os.path.dirname(BIN), "docs", "man")
OPT_RE = re.compile(r"(?<![\w-])(--[a-z0-9][a-z0-9-]*|-c)(?![\w-])")


def roff(name):
    path = os.path.join(MAN, name)
    assert os.path.exists(path), f"{path} was not built (scdoc missing?)"
    with open(path) as fh:
        return fh.read()


def plain(text):
    """roff as scdoc writes it, font changes and escapes removed."""
    text = re.sub(r"\\f[BIRP]", "", text)
    return (text.replace("\\&", "").replace("\\(aq", "'")
            .replace("\\-", "-").replace("\\e", "\\"))


def bold_spans(text):
    return set(re.findall(r"\\fB(.*?)\\fR", text.replace("\\&", "")))


def command_sections():
    """{command: roff text of its .SS section} under .SH COMMANDS."""
    text = roff("postern.8")
    body = text.split("\n.SH COMMANDS\n", 1)[1].split("\n.SH ", 1)[0]
    parts = re.split(r"^\.SS (\S+)\n", body, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def commands():
    """[(name, summary)] from `postern help`."""
    p = run("help")
    assert p.returncode == 0, p.stderr
    out = []
    lines = p.stdout.split("commands:\n", 1)[1].splitlines()
    for ln in lines:
        m = re.match(r"^  ([a-z]+) +(.*)$", ln)
        if m:
            out.append((m.group(1), m.group(2)))
    assert out, p.stdout
    return out


def subcommands(cmd, summary, usage):
    """Subcommands as `postern help` and `postern CMD --help` name them."""
    subs = set()
    m = re.search(r"\(([a-z, ]+)\)$", summary)
    if m:
        subs |= {w.strip() for w in m.group(1).split(",")}
    for ln in usage.splitlines():
        m = re.match(r"^(?:usage:|      ) postern %s (?:\[-c FILE\] )?"
                     r"([a-z]+)\b" % cmd, ln)
        if m and m.group(1) not in ("COMMAND",):
            subs.add(m.group(1))
        m = re.match(r"^  ([a-z][a-z0-9]*)(?: / ([a-z]+))?(?:\s|$)", ln)
        if m:
            subs |= {w for w in m.groups() if w}
    return subs


def test_man_pages_are_built():
    for name, title in (("postern.8", 'POSTERN" "8"'),
                        ("postern.conf.5", 'POSTERN.CONF" "5"'),
                        ("postern-log.7", 'POSTERN-LOG" "7"')):
        text = roff(name)
        assert ".TH " in text and title in text, name
        assert ".SH NAME" in text and ".SH SEE ALSO" in text, name


def test_every_command_subcommand_and_option_is_in_postern_8():
    sections = command_sections()
    man = plain(roff("postern.8"))
    missing = []
    for cmd, summary in commands():
        if cmd not in sections:
            missing.append(f"section for `postern {cmd}`")
            continue
        sec = sections[cmd]
        sec_plain = plain(sec)
        bold = bold_spans(sec)
        usage = run(cmd, "--help")
        assert usage.returncode == 0, (cmd, usage.stderr)
        assert run("help", cmd).stdout == usage.stdout, cmd
        texts = [usage.stdout]
        for sub in sorted(subcommands(cmd, summary, usage.stdout)):
            if sub not in bold:
                missing.append(f"`postern {cmd} {sub}`")
            h = run(cmd, sub, "--help")
            assert h.returncode == 0, (cmd, sub, h.stdout, h.stderr)
            texts.append(h.stdout)
        for opt in sorted({o for t in texts for o in OPT_RE.findall(t)}):
            if opt == "--help":
                continue            # COMMON OPTIONS
            if not re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(opt),
                             sec_plain):
                missing.append(f"`postern {cmd}` option {opt}")
    assert "--help" in man and "--version" in man
    assert not missing, "postern(8) lacks: " + "; ".join(missing)


def test_every_section_of_postern_8_is_a_command():
    known = {c for c, _ in commands()}
    extra = set(command_sections()) - known
    assert not extra, f"postern(8) documents commands that do not exist: " \
                      f"{sorted(extra)}"


FULL = """
hostname = "mx.test.example"; data_dir = "data"; user = "root"; workers = 1;
log = { file = "l.log"; format = "json"; };
listeners = ( { name = "a"; address = "127.0.0.1"; port = 2999;
  tls = "preferred"; auth = "optional";
  certificate = ( { cert = "c.pem"; key = "k.pem"; chain = "c.pem"; },
                  "other" ); } );
tls = { min_protocol = "TLSv1.3"; system_cas = false; };
sender_groups = ( { name = "ALL"; networks = [ "0.0.0.0/0" ];
  policy = "p"; } );
policies = { p = { action = "relay"; tls = "required";
  allow_plaintext_auth = true; max_message_size = 1000; max_recipients = 5;
  command_timeout = 10; bare_line_ends = "normalize"; }; };
local_domains = [ "example.com" ];
routes = ( { domain = "example.com"; maildir = "m/%d/%u";
    unknown_users = "reject"; users = [ "a" ]; },
  { domain = "*"; hosts = [ "[127.0.0.1]:25" ]; tls = "starttls";
    auth_user = "u"; auth_password_file = "p.pass"; } );
destinations = ( { domain = "*"; tls = "required"; max_connections = 3; } );
limits = { max_connections = 100; };
delivery = { retry_min = 1; retry_max = 2; max_queue_lifetime = 3;
  paused = true; };
alerts = { recipients = [ "a@example.com" ]; from = "b@example.com"; };
dkim = ( { domain = "example.com"; selector = "s"; key = "d.key"; } );
smime = { keys = "sm"; sign = [ "example.com" ]; encrypt = "when-possible"; };
resolver = { local_data = [ "x.example. A 127.0.0.1" ]; };
metrics = { address = "127.0.0.1"; port = 9725; };
http = { address = "127.0.0.1"; port = 2998; certificate = "default"; };
pickup = { dir = "/tmp/pk"; group = "root"; max_message_size = 10000; };
"""


def test_every_configuration_key_is_in_postern_conf_5(tmp_path):
    conf = tmp_path / "full.conf"
    conf.write_text(FULL)
    p = run("config", "show", "-c", str(conf))
    assert p.returncode == 0, p.stderr
    keys = set(re.findall(r"(?<![\w.])([a-z][a-z0-9_]*) = ", p.stdout))
    keys.discard("p")                   # the policy's name, not a key
    assert {"hostname", "bare_line_ends", "auth_password_file", "chain",
            "local_data", "metrics", "port"} <= keys, keys
    bold = bold_spans(roff("postern.conf.5"))
    missing = sorted(k for k in keys if k not in bold)
    assert not missing, f"postern.conf(5) has no entry for {missing}"


def example_blocks(section):
    """The literal blocks (.nf ... .fi) of a section of postern.conf(5)."""
    text = roff("postern.conf.5")
    body = text.split("\n.SH %s\n" % section, 1)[1].split("\n.SH ", 1)[0]
    blocks = re.findall(r"^\.nf\n(?:\.RS \d+\n)?(.*?)^\.fi$", body,
                        flags=re.M | re.S)
    assert blocks, section
    return [plain(b) for b in blocks]


def test_example_configuration_in_postern_conf_5_is_valid(tmp_path):
    (text,) = example_blocks("EXAMPLE")
    conf = tmp_path / "example.conf"
    conf.write_text(text)
    p = run("config", "check", "-c", str(conf))
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.strip().endswith("configuration OK")


@pytest.mark.skipif(os.path.exists("/etc/postern/postern.conf"),
                    reason="/etc/postern/postern.conf replaces the embedded "
                    "default on this machine")
def test_embedded_default_in_postern_conf_5_is_the_real_one(tmp_path):
    (text,) = example_blocks("EMBEDDED DEFAULT")
    conf = tmp_path / "embedded.conf"
    conf.write_text(text)
    documented = run("config", "show", "-c", str(conf), cwd=str(tmp_path))
    real = run("config", "show", cwd=str(tmp_path))
    assert documented.returncode == 0 and real.returncode == 0
    # same effective configuration; only the name in the first line differs
    assert documented.stdout.splitlines()[1:] == real.stdout.splitlines()[1:]
