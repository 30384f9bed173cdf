"""`postern config check|show` and the command-line surface (SPEC "One
binary", "Configuration")."""
import re

import pytest

from conftest import ossl, run

GOOD = """\
hostname = "mx.test.example";
data_dir = "data";
log = { file = "postern.log"; format = "text"; };
listeners = (
  { name = "inbound"; address = "127.0.0.1"; port = 2525; }
);
sender_groups = (
  { name = "RELAYLIST"; networks = [ "127.0.0.1/32" ]; policy = "relayed"; },
  { name = "ALL"; networks = [ "0.0.0.0/0", "::/0" ]; policy = "accepted"; }
);
policies = {
  relayed  = { action = "relay"; max_recipients = 100; };
  accepted = { action = "accept"; max_message_size = 1000000; };
};
limits = { max_line_length = 1000; command_timeout = 60; };
local_domains = [ "example.com" ];
routes = (
  { domain = "example.com"; maildir = "mail/%d/%u"; unknown_users = "reject"; users = [ "alice" ]; }
);
delivery = { retry_min = 60; retry_max = 3600; paused = false; };
"""


def line_of(text, needle):
    for i, ln in enumerate(text.splitlines(), 1):
        if needle in ln:
            return i
    raise AssertionError(needle)


def check(tmp_path, text, name="p.conf"):
    f = tmp_path / name
    f.write_text(text)
    return run("config", "check", "-c", str(f), cwd=str(tmp_path)), str(f)


def test_good_config(tmp_path):
    p, path = check(tmp_path, GOOD)
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""


# (name, replace old -> new in GOOD, the line the error must name (a
#  fragment of the new text), regex of the message)
BROKEN = [
    ("unknown_key", 'data_dir = "data";',
     'data_dir = "data";\nfrobnicate = 1;', "frobnicate",
     r"unknown key 'frobnicate'"),
    ("unknown_key_in_group", 'action = "accept";',
     'action = "accept"; colour = "blue";', "colour",
     r"unknown key 'colour'"),
    ("wrong_type_port", "port = 2525;", 'port = "2525";', 'port = "2525"',
     r"'port' must be an integer"),
    ("wrong_type_size", "max_message_size = 1000000;",
     'max_message_size = "big";', '"big"',
     r"'max_message_size' must be an integer"),
    ("wrong_type_paused", "paused = false;", "paused = 3;", "paused = 3",
     r"'paused' must be (a )?(boolean|true or false)"),
    ("bad_cidr_address", '"127.0.0.1/32"', '"127.0.0.300/32"',
     "127.0.0.300", r"bad network '127\.0\.0\.300/32'"),
    ("bad_cidr_prefix", '"127.0.0.1/32"', '"127.0.0.1/33"', "127.0.0.1/33",
     r"bad network '127\.0\.0\.1/33'.*prefix"),
    ("unknown_policy", 'policy = "accepted"', 'policy = "nosuch"',
     '"nosuch"', r"unknown policy 'nosuch'"),
    ("duplicate_listener_name", "port = 2525; }",
     'port = 2525; },\n  { name = "inbound"; address = "127.0.0.1"; '
     'port = 2526; }', "port = 2526", r"duplicate listener name 'inbound'"),
    ("duplicate_listener_addr", "port = 2525; }",
     'port = 2525; },\n  { name = "second"; address = "127.0.0.1"; '
     'port = 2525; }', '"second"',
     r"duplicate listener address 127\.0\.0\.1 port 2525"),
    ("bad_enum", 'action = "relay";', 'action = "forward";', '"forward"',
     r"action.*(relay|accept)"),
    ("bad_line_length", "max_line_length = 1000;", "max_line_length = 10;",
     "max_line_length = 10;", r"max_line_length"),
    ("syntax_error", 'local_domains = [ "example.com" ];',
     'local_domains = [ "example.com" = ];', 'local_domains',
     r"syntax error"),
]


@pytest.mark.parametrize("name,old,new,at,msg", BROKEN,
                         ids=[b[0] for b in BROKEN])
def test_broken_config(tmp_path, name, old, new, at, msg):
    assert old in GOOD
    text = GOOD.replace(old, new, 1)
    lineno = line_of(text, at)
    if name == "syntax_error":
        # the parser may name the next line
        lineno = (lineno, lineno + 1)
    else:
        lineno = (lineno,)
    p, path = check(tmp_path, text)
    assert p.returncode == 1, (p.stdout, p.stderr)
    errs = p.stderr.strip().splitlines()
    assert errs, "no message on stderr"
    rx = re.compile(r"^(.+):(\d+): (.+)$")
    found = False
    for e in errs:
        m = rx.match(e)
        if not m:
            continue
        assert m.group(1).endswith("p.conf"), e
        if int(m.group(2)) in lineno and re.search(msg, m.group(3)):
            found = True
    assert found, f"wanted line {lineno} /{msg}/ in:\n{p.stderr}"
    # serve refuses the same file and starts nothing
    s = run("serve", "-c", path, "--foreground", cwd=str(tmp_path), timeout=20)
    assert s.returncode == 1
    assert "configuration has errors" in s.stderr


def test_all_problems_reported(tmp_path):
    text = GOOD.replace("port = 2525;", 'port = "x";').replace(
        '"127.0.0.1/32"', '"nonsense"')
    p, _ = check(tmp_path, text)
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert any(f":{line_of(text, 'port = ')}: " in ln for ln in lines), lines
    assert any(f":{line_of(text, 'nonsense')}: " in ln for ln in lines), lines


def test_missing_file(tmp_path):
    p = run("config", "check", "-c", str(tmp_path / "nope.conf"),
            cwd=str(tmp_path))
    assert p.returncode == 1
    assert "nope.conf" in p.stderr


def test_show_round_trip(tmp_path):
    p, path = check(tmp_path, GOOD)
    assert p.returncode == 0
    show = run("config", "show", "-c", path, cwd=str(tmp_path))
    assert show.returncode == 0, show.stderr
    out = show.stdout
    assert 'hostname = "mx.test.example";' in out
    # defaults are filled in
    assert "max_connections_per_client = 50" in out
    assert "data_timeout = 600" in out
    assert "max_line_length = 1000" in out
    assert re.search(r'unknown_users = "reject"', out)
    d = tmp_path / "again"
    d.mkdir()
    (d / "shown.conf").write_text(out)
    p2 = run("config", "check", "-c", str(d / "shown.conf"), cwd=str(d))
    assert p2.returncode == 0, p2.stderr + "\n" + out
    # and it is a fixed point
    show2 = run("config", "show", "-c", str(d / "shown.conf"), cwd=str(d))
    assert show2.returncode == 0
    strip = lambda t: [ln for ln in t.splitlines() if not ln.startswith("#")]
    assert strip(show2.stdout) == strip(out)


def test_show_embedded_default(tmp_path):
    p = run("config", "show", cwd=str(tmp_path))
    if p.returncode != 0:
        pytest.skip("a system configuration is installed: " + p.stderr)
    assert "2525" in p.stdout and "localhost" in p.stdout


@pytest.mark.parametrize("args", [
    ("--help",), ("-h",), ("help",), ("help", "config"), ("help", "serve"),
    ("help", "queue"), ("config", "--help"), ("serve", "--help"),
    ("queue", "--help"), ("config", "check", "--help"),
])
def test_help_exit_0(tmp_path, args):
    p = run(*args, cwd=str(tmp_path))
    assert p.returncode == 0, (args, p.stderr)
    assert "usage: postern" in p.stdout
    assert p.stderr == ""


@pytest.mark.parametrize("args", [
    ("frobnicate",), ("help", "frobnicate"), (), ("config",),
    ("config", "frob"), ("config", "check", "--bogus"),
    ("serve", "--bogus"), ("serve", "extra-arg"), ("queue",),
])
def test_usage_errors_exit_2(tmp_path, args):
    p = run(*args, cwd=str(tmp_path))
    assert p.returncode == 2, (args, p.returncode, p.stdout, p.stderr)
    assert p.stderr.strip(), args


def test_shipped_example_configuration_is_valid(tmp_path):
    import os
    example = os.path.join(os.path.dirname(__file__), "..", "..", "docs",
                           "postern.conf.example")
    p = run("config", "check", "-c", example)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().endswith("configuration OK")


def test_check_warns_about_delivery_settings_that_cannot_work(tmp_path):
    conf = tmp_path / "p.conf"
    conf.write_text(
        'hostname = "mx.test.example"; data_dir = "data"; '
        'user = "root";\n'
        'routes = ( { domain = "*"; hosts = [ "[127.0.0.1]:2526" ]; '
        'tls = "starttls"; auth_user = "u"; auth_password_file = "r.pass"; } );\n'
        'destinations = ( { domain = "*"; tls = "required-verify"; } );\n'
        'tls = { system_cas = false; };\n')
    p = run("config", "check", "-c", str(conf))
    assert p.returncode == 0, p.stderr       # warnings, not errors
    lines = p.stdout.splitlines()
    assert any(ln.startswith("warning: ") and ":2: route *: "
               "auth_password_file " in ln and "r.pass cannot be read "
               "(No such file or directory)" in ln for ln in lines), p.stdout
    assert any(ln.startswith("warning: ") and "trust store is empty" in ln
               and "postern trust add" in ln for ln in lines), p.stdout
    assert lines[-1].endswith("configuration OK")
    # the file there and a CA in the trust store: no warning
    (tmp_path / "r.pass").write_text("secret\n")
    ca = tmp_path / "ca.pem"
    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=Test CA", "-keyout", str(tmp_path / "ca.key"),
         "-out", str(ca))
    t = run("trust", "add", str(ca), "--name", "testca", "-c", str(conf))
    assert t.returncode == 0, t.stderr
    p = run("config", "check", "-c", str(conf))
    assert p.returncode == 0 and "warning" not in p.stdout, p.stdout


def test_check_loads_the_https_api_certificate(tmp_path):
    """config check loads the `http` block's certificate as serve would."""
    text = GOOD + ('http = { address = "127.0.0.1"; port = 2998; '
                   'certificate = { cert = "nope.pem"; key = "nope.key"; }; };\n')
    p, path = check(tmp_path, text)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert re.search(r"p\.conf:%d: http certificate: cannot read .*nope\.pem"
                     % line_of(text, "http = {"), p.stderr), p.stderr
