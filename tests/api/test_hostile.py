# SPDX-License-Identifier: Apache-2.0
"""api.hostile: a hostile-input sweep of every route of a real kova-agent.

Every route the router serves is in ROUTES below (and the test fails when api/*.c has a route
the table lacks, or the table one the source lacks). Each route and method gets a matrix of
hostile inputs: malformed JSON bodies, wrong types for every documented field, unknown and
path-like ids, hostile query strings, bad microversion / Content-Type / auth headers, huge
headers and the methods it does not serve. Each answer must be the 4xx Nova (or Glance, on the
image listener) gives, with a fault body of the right shape; after each test the agent must
still answer and its database (a dump of state.db) must be what it was before: a refused write
leaves no row, half-written or whole.

The same sweep runs under Keystone auth (keystone.auth, tests/keystone/test_keystone.py, with a
real Keystone): --auth-conf FILE is the agent's config (auth_strategy = keystone) and --tokens
FILE maps the noauth2 tokens the tables use (admin:admin, demo:demo, other:otherproj) to real
Keystone tokens of an admin, a member of one project and a member of another; the noauth
identity endpoint is then absent (404) and not swept.

usage: /usr/bin/python3 test_hostile.py --agent PATH/kova-agent [--auth-conf F --tokens F]
"""
import glob
import http.client
import json
import os
import re
import socket
import sqlite3
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kova_agent_fixture import Agent, stop_checked, unittest_main  # noqa: E402

AGENT_BIN = None
AUTH_CONF = None  # the agent's config text under Keystone auth (--auth-conf), else noauth2
TOKENS = {}  # noauth2 token -> the real Keystone token sent for it (--tokens)
A = None  # the shared agent
F = {}  # fixture ids: sid, iid, qid, fid, kp, mkey, spec, reqid, hyp
SENT = {}  # test name -> hostile requests sent
API_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "api")

ADMIN = "admin:admin"
DEMO = "demo:demo"
NOVA_FAULTS = {400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound",
               405: "badMethod", 409: "conflictingRequest", 413: "overLimit",
               414: "overLimit", 415: "badMediaType", 431: "overLimit", 501: "notImplemented"}
TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
          405: "Method Not Allowed", 409: "Conflict", 413: "Request Entity Too Large",
          414: "Request-URI Too Long", 415: "Unsupported Media Type", 431: "Request Header Fields Too Large"}
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
UUID0 = "00000000-0000-0000-0000-000000000000"
JSON_CT = "application/json"
PATCH_CT = "application/openstack-images-v2.1-json-patch"
OCTET_CT = "application/octet-stream"

# --------------------------------------------------------------------------- the route table
#
# Every route of the router (api/*.c route tables): (service, method, path template, token,
# good body). The template's {placeholders} are the route's '*' segments, filled from F; the
# pattern the router matches is the template with "/v2.1" cut (compute) and each placeholder
# a '*'. The good body is one the route accepts (a dict/list for JSON, bytes for an upload,
# None for none): the sweeps send it with one thing made hostile.


def good_server():
    return {"server": {"name": "hostile-ok", "imageRef": F["iid"], "flavorRef": "1"}}


ROUTES = [
    # versions.c
    ("compute", "GET", "/", None, None),
    ("compute", "GET", "/v2.1", None, None),
    ("compute", "GET", "/v2", None, None),
    ("image", "GET", "/", None, None),
    ("image", "GET", "/versions", None, None),
    ("image", "GET", "/v2", None, None),
    # flavors.c
    ("compute", "GET", "/v2.1/flavors", DEMO, None),
    ("compute", "GET", "/v2.1/flavors/detail", DEMO, None),
    ("compute", "POST", "/v2.1/flavors", ADMIN,
     lambda: {"flavor": {"name": "hostile-f", "ram": 64, "vcpus": 1, "disk": 1}}),
    ("compute", "GET", "/v2.1/flavors/{fid}", DEMO, None),
    ("compute", "DELETE", "/v2.1/flavors/{fid}", ADMIN, None),
    ("compute", "GET", "/v2.1/flavors/{fid}/os-extra_specs", DEMO, None),
    ("compute", "POST", "/v2.1/flavors/{fid}/os-extra_specs", ADMIN,
     lambda: {"extra_specs": {"hw:cpu_policy": "shared"}}),
    ("compute", "GET", "/v2.1/flavors/{fid}/os-extra_specs/{spec}", DEMO, None),
    ("compute", "PUT", "/v2.1/flavors/{fid}/os-extra_specs/{spec}", ADMIN,
     lambda: {F["spec"]: "other"}),
    ("compute", "DELETE", "/v2.1/flavors/{fid}/os-extra_specs/{spec}", ADMIN, None),
    # keypairs.c
    ("compute", "GET", "/v2.1/os-keypairs", DEMO, None),
    ("compute", "POST", "/v2.1/os-keypairs", DEMO, lambda: {"keypair": {"name": "hostile-k"}}),
    ("compute", "GET", "/v2.1/os-keypairs/{kp}", DEMO, None),
    ("compute", "DELETE", "/v2.1/os-keypairs/{kp}", DEMO, None),
    # servers.c
    ("compute", "GET", "/v2.1/servers", DEMO, None),
    ("compute", "POST", "/v2.1/servers", DEMO, good_server),
    ("compute", "GET", "/v2.1/servers/detail", DEMO, None),
    ("compute", "GET", "/v2.1/servers/{sid}", DEMO, None),
    ("compute", "PUT", "/v2.1/servers/{sid}", DEMO, lambda: {"server": {"name": "renamed"}}),
    ("compute", "DELETE", "/v2.1/servers/{sid}", DEMO, None),
    ("compute", "POST", "/v2.1/servers/{sid}/action", DEMO, lambda: {"os-start": None}),
    ("compute", "GET", "/v2.1/servers/{sid}/metadata", DEMO, None),
    ("compute", "POST", "/v2.1/servers/{sid}/metadata", DEMO,
     lambda: {"metadata": {"added": "v"}}),
    ("compute", "PUT", "/v2.1/servers/{sid}/metadata", DEMO,
     lambda: {"metadata": {"only": "v"}}),
    ("compute", "GET", "/v2.1/servers/{sid}/metadata/{mkey}", DEMO, None),
    ("compute", "PUT", "/v2.1/servers/{sid}/metadata/{mkey}", DEMO,
     lambda: {"meta": {F["mkey"]: "changed"}}),
    ("compute", "DELETE", "/v2.1/servers/{sid}/metadata/{mkey}", DEMO, None),
    ("compute", "GET", "/v2.1/servers/{sid}/os-instance-actions", DEMO, None),
    ("compute", "GET", "/v2.1/servers/{sid}/os-instance-actions/{reqid}", DEMO, None),
    ("compute", "GET", "/v2.1/limits", DEMO, None),
    # images.c: Glance on the image listener, Nova's proxy on the compute one
    ("image", "POST", "/v2/images", DEMO, lambda: {"name": "hostile-i"}),
    ("image", "GET", "/v2/images", DEMO, None),
    ("image", "GET", "/v2/images/{iid}", DEMO, None),
    ("image", "PATCH", "/v2/images/{qid}", DEMO,
     lambda: [{"op": "replace", "path": "/name", "value": "patched"}]),
    ("image", "DELETE", "/v2/images/{qid}", DEMO, None),
    ("image", "PUT", "/v2/images/{qid}/file", DEMO, lambda: b"image-bytes"),
    ("image", "GET", "/v2/images/{iid}/file", DEMO, None),
    ("image", "POST", "/v2/images/{qid}/import", DEMO,
     lambda: {"method": {"name": "web-download", "uri": "http://example.org/x.img"}}),
    ("image", "GET", "/v2/info/import", DEMO, None),
    ("compute", "GET", "/v2.1/images", DEMO, None),
    ("compute", "GET", "/v2.1/images/detail", DEMO, None),
    ("compute", "GET", "/v2.1/images/{iid}", DEMO, None),
    ("compute", "DELETE", "/v2.1/images/{qid}", DEMO, None),
    # networks.c (the sweep's agent has no networks: every id is unknown)
    ("compute", "GET", "/v2.1/os-networks", DEMO, None),
    ("compute", "GET", "/v2.1/os-networks/{nid}", DEMO, None),
    ("compute", "GET", "/v2.1/servers/{sid}/os-interface", DEMO, None),
    ("compute", "POST", "/v2.1/servers/{sid}/os-interface", DEMO,
     lambda: {"interfaceAttachment": {"net_id": F["nid"]}}),
    ("compute", "GET", "/v2.1/servers/{sid}/os-interface/{pid}", DEMO, None),
    ("compute", "DELETE", "/v2.1/servers/{sid}/os-interface/{pid}", DEMO, None),
    # hosts.c
    ("compute", "GET", "/v2.1/os-availability-zone", DEMO, None),
    ("compute", "GET", "/v2.1/os-availability-zone/detail", ADMIN, None),
    ("compute", "GET", "/v2.1/os-hypervisors", ADMIN, None),
    ("compute", "GET", "/v2.1/os-hypervisors/detail", ADMIN, None),
    ("compute", "GET", "/v2.1/os-hypervisors/statistics", ADMIN, None),
    ("compute", "GET", "/v2.1/os-hypervisors/{hyp}", ADMIN, None),
    ("compute", "GET", "/v2.1/os-hypervisors/{hyp}/uptime", ADMIN, None),
    ("compute", "GET", "/v2.1/os-aggregates", ADMIN, None),
    ("compute", "GET", "/v2.1/os-services", ADMIN, None),
    # identity.c (noauth2 only)
    ("compute", "GET", "/identity", None, None),
    ("compute", "GET", "/identity/v3", None, None),
    ("compute", "POST", "/identity/v3/auth/tokens", None,
     lambda: {"auth": {"identity": {"methods": ["password"],
                                    "password": {"user": {"name": "u"}}}}}),
]


def pattern_of(svc, tmpl):
    p = tmpl
    if svc == "compute" and (p.startswith("/v2.1/") or p.startswith("/v2/")):
        p = p[len("/v2.1"):] if p.startswith("/v2.1/") else p[len("/v2"):]
    return re.sub(r"\{[a-z]+\}", "*", p)


def source_routes():
    """(service, method, pattern) of every row of the route tables in api/*.c."""
    out = set()
    row = re.compile(r'\{\s*SVC_(COMPUTE|IMAGE)\s*,\s*"([A-Z]+)"\s*,\s*"([^"]*)"')
    for path in glob.glob(os.path.join(API_DIR, "*.c")):
        with open(path) as f:
            for svc, method, pat in row.findall(f.read()):
                out.add((svc.lower(), method, pat))
    return out


def fill(tmpl, **override):
    vals = dict(F)
    vals.update(override)
    return tmpl.format(**vals)


def body_bytes(body):
    if body is None:
        return None
    if isinstance(body, bytes):
        return body
    return json.dumps(body).encode()


def default_ctype(svc, method, tmpl, body):
    if body is None:
        return None
    if tmpl.endswith("/file"):
        return OCTET_CT
    if svc == "image" and method == "PATCH":
        return PATCH_CT
    return JSON_CT


# --------------------------------------------------------------------------- requests


def send(svc, method, path, body=None, token=DEMO, ctype=None, headers=None):
    """One request on a connection of its own: (status, headers (lower-case), body bytes)."""
    port = A.image_port if svc == "image" else A.port
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    h = {}
    if token is not None:
        h["X-Auth-Token"] = TOKENS.get(token, token)
    if ctype is not None:
        h["Content-Type"] = ctype
    h.update(headers or {})
    c.putrequest(method, path, skip_host="Host" in h, skip_accept_encoding=True)
    for k, v in h.items():
        c.putheader(k, v)
    data = body_bytes(body)
    if data is not None:
        c.putheader("Content-Length", str(len(data)))
    c.endheaders(data)
    r = c.getresponse()
    payload = r.read()
    hdrs = {k.lower(): v for k, v in r.getheaders()}
    c.close()
    return r.status, hdrs, payload


def db_dump():
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(A.state_dir, "state.db"), uri=True,
                         timeout=10)
    try:
        return list(db.iterdump())
    finally:
        db.close()


class Sweep(unittest.TestCase):
    """Each test: hostile requests only; the database is the same after it, the agent alive."""

    def setUp(self):
        self.sent = 0
        self.before = db_dump()

    def tearDown(self):
        SENT[self._testMethodName] = self.sent
        self.assertIsNone(A.proc.poll(), "the agent died")
        st, _, _ = send("compute", "GET", "/", token=None)
        self.assertEqual(st, 200, "the agent still answers")
        after = db_dump()
        if after != self.before:
            gone = [x for x in self.before if x not in after]
            new = [x for x in after if x not in self.before]
            self.fail("a refused request changed the database:\n- %s\n+ %s" %
                      ("\n- ".join(gone[:10]), "\n+ ".join(new[:10])))

    def fault(self, want, svc, method, path, body=None, token=DEMO, ctype=None, headers=None,
              what=""):
        """Sends one hostile request; asserts the status (one of want) and the fault body."""
        want = (want,) if isinstance(want, int) else tuple(want)
        self.sent += 1
        st, h, raw = send(svc, method, path, body, token, ctype, headers)
        ctx = "%s %s %s %s -> %d %r" % (svc, method, path[:120], what, st, raw[:300])
        self.assertIn(st, want, ctx)
        self.assertTrue(h.get("content-type", "").startswith("application/json"), ctx)
        try:
            b = json.loads(raw.decode("utf-8"))
        except ValueError:
            self.fail("not UTF-8 JSON: " + ctx)
        if svc == "image":
            # Glance's error body
            self.assertIsInstance(b, dict, ctx)
            self.assertEqual(b.get("code"), "%d %s" % (st, TITLES[st]), ctx)
            self.assertEqual(b.get("title"), TITLES[st], ctx)
            self.assertTrue(isinstance(b.get("message"), str) and b["message"], ctx)
        else:
            name = NOVA_FAULTS.get(st, "computeFault")
            self.assertEqual(list(b), [name], ctx)
            self.assertEqual(b[name]["code"], st, ctx)
            self.assertTrue(isinstance(b[name]["message"], str) and b[name]["message"], ctx)
        return st, b

    def answer(self, svc, method, path, body=None, token=DEMO, ctype=None, headers=None,
               what=""):
        """A request the route may accept (a query it ignores): no 5xx, JSON when it says so."""
        self.sent += 1
        st, h, raw = send(svc, method, path, body, token, ctype, headers)
        ctx = "%s %s %s %s -> %d %r" % (svc, method, path[:120], what, st, raw[:300])
        self.assertLess(st, 500, ctx)
        if h.get("content-type", "").startswith("application/json"):
            json.loads(raw.decode("utf-8"))
        return st


def setUpModule():
    global A
    A = Agent(AGENT_BIN, config_text=AUTH_CONF).start()

    def ok(svc, method, path, body=None, token=DEMO, status=(200,), ctype=None):
        st, _, raw = send(svc, method, path, body, token,
                          ctype or (JSON_CT if body is not None else None))
        assert st in status, (method, path, st, raw[:300])
        return json.loads(raw) if raw else None

    # an active image (its servers end in ERROR at once: kova boots through BIOS firmware)
    F["iid"] = ok("image", "POST", "/v2/images", {"name": "hostile-active",
                                                  "disk_format": "raw",
                                                  "container_format": "bare",
                                                  "hw_firmware_type": "uefi"},
                  status=(201,))["id"]
    ok("image", "PUT", "/v2/images/%s/file" % F["iid"], b"hostile" * 100, status=(204,),
       ctype=OCTET_CT)
    F["qid"] = ok("image", "POST", "/v2/images", {"name": "hostile-queued"},
                  status=(201,))["id"]
    F["fid"] = ok("compute", "POST", "/v2.1/flavors", {"flavor": {
        "name": "hostile-flavor", "id": "hostile-flavor", "ram": 64, "vcpus": 1, "disk": 1}},
        token=ADMIN)["flavor"]["id"]
    ok("compute", "POST", "/v2.1/flavors", {"flavor": {
        "name": "hostile-private", "id": "hostile-private", "ram": 64, "vcpus": 1, "disk": 1,
        "os-flavor-access:is_public": False}}, token=ADMIN)
    F["other_priv"] = ok("image", "POST", "/v2/images", {"name": "other-private",
                                                        "visibility": "private"},
                         token="other:otherproj", status=(201,))["id"]
    F["spec"] = "hw:mem_page_size"
    ok("compute", "POST", "/v2.1/flavors/%s/os-extra_specs" % F["fid"],
       {"extra_specs": {F["spec"]: "large"}}, token=ADMIN)
    F["kp"] = "hostile-kp"
    ok("compute", "POST", "/v2.1/os-keypairs", {"keypair": {"name": F["kp"]}})
    F["sid"] = ok("compute", "POST", "/v2.1/servers", good_server(),
                  status=(202,))["server"]["id"]
    deadline = time.time() + 30
    while time.time() < deadline:
        s = ok("compute", "GET", "/v2.1/servers/%s" % F["sid"])["server"]
        if s["status"] == "ERROR" and not s["OS-EXT-STS:task_state"]:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("server never reached ERROR: %r" % s)
    # stopped: metadata writes are allowed (their checks come before any state conflict)
    A.set_server_state(F["sid"], "stopped")
    F["mkey"] = "hostile-key"
    ok("compute", "POST", "/v2.1/servers/%s/metadata" % F["sid"],
       {"metadata": {F["mkey"]: "v"}})
    acts = ok("compute", "GET", "/v2.1/servers/%s/os-instance-actions" % F["sid"])
    F["reqid"] = acts["instanceActions"][0]["request_id"]
    F["hyp"] = "1"
    F["nid"] = "5a1c0e2e-7d1e-4c4f-9a55-1d0c3b7e9f10"
    F["pid"] = "6b2d1f3f-8e2f-4d50-8b66-2e1d4c8f0a21"


def tearDownModule():
    print("\nhostile requests sent: %d (%s)" % (sum(SENT.values()), ", ".join(
        "%s %d" % (k[5:], v) for k, v in sorted(SENT.items()))), file=sys.stderr)
    stop_checked(A)


# --------------------------------------------------------------------------- the sweeps


def json_routes():
    """The routes with a JSON body: (svc, method, template, token, good body)."""
    return [r for r in ROUTES if r[4] is not None and not r[2].endswith("/file")]


class RouteTable(unittest.TestCase):
    def test_table_lists_every_route_of_the_router(self):
        src = source_routes()
        self.assertGreater(len(src), 50, "the route tables were not found in %s" % API_DIR)
        table = {(svc, m, pattern_of(svc, t)) for svc, m, t, _, _ in ROUTES}
        if AUTH_CONF:  # under Keystone the noauth identity endpoint is not served
            for svc, m, t in sorted(x for x in src if x[2].startswith("/identity")):
                st, _, _ = send(svc, m, t, {} if m == "POST" else None, token=None,
                                ctype=JSON_CT if m == "POST" else None)
                self.assertEqual(st, 404, "%s %s under Keystone auth" % (m, t))
                src.discard((svc, m, t))
        self.assertEqual(len(table), len(ROUTES), "a route is listed twice")
        self.assertEqual(sorted(src - table), [], "routes of api/*.c missing from ROUTES")
        self.assertEqual(sorted(table - src), [], "routes in ROUTES the router does not have")


class Methods(Sweep):
    def test_wrong_method_is_405(self):
        served = {}
        for svc, m, t, tok, _ in ROUTES:
            served.setdefault((svc, fill(t)), set()).add(m)
        pats = {(svc, pattern_of(svc, t), m) for svc, m, t, _, _ in ROUTES}

        def serves(svc, path, method):
            segs = [s for s in path.split("/") if s]
            if svc == "compute" and segs and segs[0] in ("v2.1", "v2") and len(segs) > 1:
                segs = segs[1:]
            for s, p, m in pats:
                ps = [x for x in p.split("/") if x]
                if s == svc and m == method and len(ps) == len(segs) and all(
                        a == "*" or a == b for a, b in zip(ps, segs)):
                    return True
            return False

        for (svc, path), methods in served.items():
            for m in METHODS:
                if m in methods or serves(svc, path, m):
                    continue
                self.fault(405, svc, m, path, token=ADMIN, what="method")


HOSTILE_IDS = [
    # (id as sent in the path, statuses)
    (UUID0, (404,)), ("nope", (404,)), ("..", (404,)), ("%2e%2e", (404,)),
    ("%2E%2E%2F%2E%2E%2Fetc%2Fpasswd", (404, 405)), ("a%2Fb", (404, 405)), ("a/b", (404, 405)),
    ("x" * 10240, (414,)), ("y" * 255, (404,)), ("y" * 256, (404,)),
    ("y" * 1500, (404,)), ("%00", (404,)), ("x%00y", (404,)),
    ("%C3%A9t%C3%A9", (404,)), ("%FF%FE", (404,)), ("%ED%A0%80", (404,)), ("%25", (404,)),
    ("%27%20OR%20%271%27=%271", (404,)), ("%0d%0aX-Injected:%201", (404,)),
    ("%20", (404,)), (UUID0.upper(), (404,)),
]

# where the id is a key that the body must name too: a wrong one is "URI mismatch" (400)
KEY_IN_BODY = {("PUT", "spec"), ("PUT", "mkey")}


class Ids(Sweep):
    def test_private_flavor_is_unknown_to_members(self):
        # kova keeps no flavor access lists: a private flavor is the admins' (Nova: not found)
        for p in ("/v2.1/flavors/hostile-private", "/v2.1/flavors/hostile-private/os-extra_specs",
                  "/v2.1/flavors/hostile-private/os-extra_specs/x"):
            self.fault(404, "compute", "GET", p)
        for q in ("is_public=false", "is_public=none", "is_public=maybe"):
            ids = [f["id"] for f in json.loads(send("compute", "GET", "/v2.1/flavors?" + q)[2])
                   ["flavors"]]
            self.assertNotIn("hostile-private", ids, q)
        b = good_server()
        b["server"]["flavorRef"] = "hostile-private"
        self.fault(400, "compute", "POST", "/v2.1/servers", b)
        self.assertEqual(send("compute", "GET", "/v2.1/flavors/hostile-private", token=ADMIN)[0],
                         200)

    def test_unknown_and_path_like_ids(self):
        for svc, m, t, tok, good in ROUTES:
            for ph in re.findall(r"\{([a-z]+)\}", t):
                for hid, want in HOSTILE_IDS:
                    if (m, ph) in KEY_IN_BODY:
                        want = tuple(want) + (400,)
                    body = good() if good else None
                    self.fault(want, svc, m, fill(t, **{ph: hid}), body, tok,
                               default_ctype(svc, m, t, body), what="id " + ph)


MALFORMED = [
    b"", b"{", b"{\"a\":", b"not json", b"null", b"\"str\"", b"1", b"true", b"NaN",
    b"{\"a\": NaN}", b"{\"a\": Infinity}", b"[" * 10000 + b"]" * 10000,
    b"{\"a\":" * 10000 + b"1" + b"}" * 10000, b"\xff\xfe{}", b"\xef\xbb\xbf{}",
    b"{\"\xff\": 1}", b"{\"a\": \"\\ud800\"}", b"{\"a\": \"\\u0000\"}", b"{'a': 1}",
    b"{\"a\": 1,}", b"{\"a\": 1} {\"b\": 2}", b"\x00",
]


class Bodies(Sweep):
    def test_malformed_json(self):
        for svc, m, t, tok, good in json_routes():
            g = good()
            extra = [b"[]", b"[{}]"] if isinstance(g, dict) else [b"{}", b"[1]", b"[null]"]
            # duplicate keys: the good body with its first key twice
            text = json.dumps(g)
            dup = ("[%s, %s]" % (text[1:-1], text[1:-1]) if isinstance(g, list) else
                   "{%s, %s}" % (text[1:-1], text[1:-1])).encode()
            if isinstance(g, list):  # a patch op object with a key twice
                dup = b'[{"op": "replace", "op": "add", "path": "/name", "value": "x"}]'
            for raw in MALFORMED + extra + [dup]:
                self.fault(400, svc, m, fill(t), raw, tok, default_ctype(svc, m, t, g),
                           what="body %r" % raw[:20])

    def test_huge_bodies(self):
        for svc, m, t, tok, good in json_routes():
            g = good()
            big = json.dumps({"k": "x" * (1 << 20)}).encode()
            self.fault(413, svc, m, fill(t), big, tok, default_ctype(svc, m, t, g), what="1MiB")
        # a huge value inside an otherwise good body
        b = good_server()
        b["server"]["name"] = "x" * (1 << 20)
        self.fault(413, "compute", "POST", "/v2.1/servers", b)
        # 256 characters of name: 400, not a truncated row
        b["server"]["name"] = "x" * 256
        self.fault(400, "compute", "POST", "/v2.1/servers", b)


# wrong values by kind: each is wrong for the field in Nova's (and Glance's) schema
WRONG = {
    "name": [1, 1.5, True, [], {}, None, "", "   ", " lead", "trail ", "x" * 256, "a\nb",
             "tab\there"],
    "str": [1, 1.5, True, [], {}],
    "uuid": [1, True, [], {}, "", "not-a-uuid", "x" * 300, UUID0],
    "int1": ["abc", 1.5, True, [], {}, -1, 0, 2 ** 31, 2 ** 63, -2 ** 63, " 1", "+1", "1.5",
             "1e3", ""],
    "int0": ["abc", 1.5, True, [], {}, -1, 2 ** 31, 2 ** 63, " 0", "+0", "-1", "0x10"],
    "bool": ["maybe", 2, [], {}, 1.5],
    "obj": ["x", 1, [], True, 1.5],
    "list": ["x", 1, {}, True, 1.5],
    "meta": ["x", 1, [], True, {"k": 1}, {"k": None}, {"k": []}, {"": "v"}, {"a/b": "v"},
             {"k": "v" * 256}, {"k" * 256: "v"}, {"\u00e9": "v"}],
}

# (route method, template, field path in the good body, kinds or explicit wrong values)
FIELDS = [
    ("POST", "/v2.1/servers", [
        ("server.name", "name"), ("server.imageRef", "uuid"),
        ("server.flavorRef", [1.5, True, [], {}, None, "", "999", "x" * 300]),
        ("server.metadata", "meta"),
        ("server.key_name", [1, True, [], {}, "", "x" * 256, "no-such-key"]),
        ("server.user_data", [1, True, [], {}, "***", "QUJD" * 20000]),
        ("server.availability_zone", [1, True, [], {}, "elsewhere"]),
        ("server.min_count", "int1"), ("server.max_count", "int1"),
        ("server.return_reservation_id", "bool"),
        ("server.networks", [1, True, {}, "some", [{"uuid": "x"}], [{"port": UUID0}]]),
        ("server.config_drive", [7, [], {}, "maybe"]),
        ("server.OS-DCF:diskConfig", [1, True, [], {}, None, "SOMETIMES"]),
        ("server.accessIPv4", [1, True, [], {}, "300.1.1.1", "::1", "x"]),
        ("server.accessIPv6", [1, True, [], {}, "zz::1", "1.2.3.4"]),
        ("server.security_groups", ["default", 1, {}, [1], [{"name": 1}], [{"name": "web"}]]),
        ("server.adminPass", [1, True, [], {}]),
        ("server.personality", ["x", 1, {}, [{"path": "/etc/x", "contents": "eA=="}]]),
        ("server.block_device_mapping_v2", ["x", 1, {}, [{"uuid": UUID0}]]),
        ("server.no_such_field", [1]), ("server.description", ["x"]),
        ("server.tags", [["t"]]), ("server.host", ["h"]), ("extra_top", [1]),
        ("os:scheduler_hints", ["x", 1, [], True]), ("OS-SCH-HNT:scheduler_hints", ["x", 1]),
    ]),
    ("PUT", "/v2.1/servers/{sid}", [
        ("server.name", "name"),
        ("server.accessIPv4", [1, True, [], {}, "300.1.1.1", None]),
        ("server.accessIPv6", [1, True, [], {}, "zz::1", None]),
        ("server.OS-DCF:diskConfig", [1, None, "SOMETIMES"]),
        ("server.description", ["x"]), ("server.metadata", [{"a": "b"}]), ("extra_top", [1]),
    ]),
    ("POST", "/v2.1/servers/{sid}/metadata", [("metadata", "meta"), ("extra_top", [1])]),
    ("PUT", "/v2.1/servers/{sid}/metadata", [("metadata", "meta"), ("extra_top", [1])]),
    ("PUT", "/v2.1/servers/{sid}/metadata/{mkey}", [
        ("meta", ["x", 1, [], True, {}, {"other": "v"}, {"hostile-key": 1},
                  {"hostile-key": "v", "b": "w"}, {"hostile-key": "v" * 256}]),
        ("extra_top", [1]),
    ]),
    ("POST", "/v2.1/flavors", [
        ("flavor.name", "name"),
        ("flavor.id", [True, [], {}, 1.5, -1, "", " lead", "a/b", "x" * 256, "\u00e9"]),
        ("flavor.ram", "int1"), ("flavor.vcpus", "int1"), ("flavor.disk", "int0"),
        ("flavor.OS-FLV-EXT-DATA:ephemeral", "int0"), ("flavor.swap", "int0"),
        ("flavor.rxtx_factor", ["x", True, [], {}, 0, -1.5, 1e39]),
        ("flavor.os-flavor-access:is_public", ["maybe", 2, [], {}]),
        ("flavor.description", ["x"]), ("flavor.no_such_field", [1]), ("extra_top", [1]),
    ]),
    ("POST", "/v2.1/flavors/{fid}/os-extra_specs", [
        ("extra_specs", ["x", 1, [], True, {"k": {}}, {"k": []}, {"k": None}, {"bad key!": "v"},
                         {"k": "v" * 256}, {"k" * 256: "v"}, {"": "v"}]),
        ("extra_top", [1]),
    ]),
    ("PUT", "/v2.1/flavors/{fid}/os-extra_specs/{spec}", [
        ("hw:mem_page_size", [{}, [], None, "v" * 256]), ("other_key", ["v"]),
    ]),
    ("POST", "/v2.1/os-keypairs", [
        ("keypair.name", [1, True, [], {}, None, "", "x" * 256, "a/b", "\u00e9", "a.b"]),
        ("keypair.public_key", [1, True, [], {}, "", "not a key", "ssh-rsa AAAA",
                                "ssh-rsa " + "A" * 20000]),
        ("keypair.type", ["ssh"]), ("keypair.user_id", ["u"]), ("extra_top", [1]),
    ]),
    ("POST", "/identity/v3/auth/tokens", [
        ("auth", ["x", 1, [], None]), ("auth.identity", ["x", 1, []]),
        ("auth.identity.methods", ["password", 1, {}, None]),
    ]),
    ("POST", "/v2/images", [
        ("name", [1, True, [], {}, "x" * 256]), ("visibility", [1, None, "everyone", "all"]),
        ("disk_format", [1, True, "exe"]), ("container_format", [1, True, "zip"]),
        ("min_disk", ["x", -1, 1.5, True, 2 ** 40, None]),
        ("min_ram", ["x", -1, 1.5, True, 2 ** 40, None]),
        ("protected", ["yes", 1, None]), ("os_hidden", ["yes", 1]),
        ("tags", ["x", 1, [1], [""], ["x" * 256], ["t%d" % i for i in range(129)]]),
        ("id", [1, "../../etc", "not-a-uuid", ""]), ("kernel_id", [1, "x"]),
        ("ramdisk_id", ["../x"]), ("custom_prop", [5, True, [], {}]),
    ]),
    ("POST", "/v2/images/{qid}/import", [
        ("method", ["x", 1, [], None]), ("method.name", [1, None, "glance-direct", "x"]),
        ("method.uri", [1, None, "", "file:///etc/passwd", "ftp://example.org/x",
                        "gopher://example.org/", "http://" + "x" * 2100]),
        ("method.validation_data", ["x", 1, {"os_hash_algo": "md5"},
                                    {"os_hash_value": 1}, {"checksum": []},
                                    {"os_hash_algo": "sha512", "os_hash_value": "zz"},
                                    {"os_hash_algo": "sha512", "os_hash_value": "a" * 127},
                                    {"os_hash_value": "a" * 128}, {"os_hash_algo": "sha512"},
                                    {"checksum": "x" * 32}]),
    ]),
]

# Glance: read-only attributes are 403, as Glance has them
READONLY = ["status", "size", "virtual_size", "checksum", "os_hash_algo", "os_hash_value",
            "created_at", "updated_at", "self", "file", "schema", "owner", "direct_url",
            "locations", "deleted", "deleted_at"]


def set_path(body, dotted, value):
    """A copy of body with dotted (a.b.c) set to value (missing objects are made)."""
    body = json.loads(json.dumps(body))
    if dotted == "extra_top":
        body["extra_top"] = value
        return body
    keys = dotted.split(".")
    o = body
    for k in keys[:-1]:
        if not isinstance(o.get(k), dict):
            o[k] = {}
        o = o[k]
    o[keys[-1]] = value
    return body


def route(method, tmpl):
    for r in ROUTES:
        if r[1] == method and r[2] == tmpl:
            return r
    raise KeyError((method, tmpl))


class Types(Sweep):
    def test_wrong_types_for_every_field(self):
        for method, tmpl, fields in FIELDS:
            svc, _, _, tok, good = route(method, tmpl)
            for path, kind in fields:
                values = WRONG[kind] if isinstance(kind, str) else kind
                for v in values:
                    body = set_path(good(), path, v)
                    want = (400,)
                    if tmpl == "/identity/v3/auth/tokens":
                        want = (400, 401)
                    self.fault(want, svc, method, fill(tmpl), body, tok,
                               default_ctype(svc, method, tmpl, body),
                               what="%s=%r" % (path, v if not isinstance(v, str) else v[:30]))

    def test_glance_readonly_attributes(self):
        for k in READONLY:
            self.fault(403, "image", "POST", "/v2/images", {"name": "ro", k: "x"})
            self.fault(403, "image", "PATCH", fill("/v2/images/{qid}"),
                       [{"op": "replace", "path": "/" + k, "value": "x"}], ctype=PATCH_CT)
        self.fault(403, "image", "POST", "/v2/images", {"visibility": "public"})

    def test_quotas_refuse_whole_requests(self):
        # Glance's image_property_quota (128): 413, on create and on a patch that would pass it
        props = {"p%d" % i: "v" for i in range(129)}
        self.fault(413, "image", "POST", "/v2/images", dict(props, name="many"))
        self.fault(413, "image", "PATCH", fill("/v2/images/{qid}"),
                   [{"op": "add", "path": "/" + k, "value": v} for k, v in props.items()],
                   ctype=PATCH_CT)
        # 129 tags; Nova's metadata_items quota (128) on create and on the metadata routes
        self.fault(400, "image", "POST", "/v2/images", {"tags": ["t%d" % i for i in range(129)]})
        md = {"k%d" % i: "v" for i in range(129)}
        b = good_server()
        b["server"]["metadata"] = md
        self.fault(403, "compute", "POST", "/v2.1/servers", b)
        for m in ("POST", "PUT"):
            self.fault(403, "compute", m, fill("/v2.1/servers/{sid}/metadata"), {"metadata": md})
        # more servers than the quota: none made
        b = good_server()
        b["server"].update(min_count=1000, max_count=1000)
        self.fault(403, "compute", "POST", "/v2.1/servers", b)

    def test_server_actions(self):
        act = fill("/v2.1/servers/{sid}/action")
        iid = F["iid"]
        bad = [
            {}, {"os-start": None, "os-stop": None}, {"no-such-action": None},
            {"os-start": {"x": 1}}, {"os-start": 5}, {"os-stop": "x"}, {"os-stop": [1]},
            {"pause": True}, {"unpause": {"a": "b"}},
            {"reboot": None}, {"reboot": "HARD"}, {"reboot": {}}, {"reboot": {"type": 1}},
            {"reboot": {"type": "MEDIUM"}}, {"reboot": {"type": "SOFT", "x": 1}},
            {"rebuild": None}, {"rebuild": {}}, {"rebuild": {"imageRef": 5}},
            {"rebuild": {"imageRef": "x"}}, {"rebuild": {"imageRef": UUID0}},
            {"os-getConsoleOutput": "x"}, {"os-getConsoleOutput": {"length": "many"}},
            {"os-getConsoleOutput": {"length": -5}}, {"os-getConsoleOutput": {"length": 1.5}},
            {"os-getConsoleOutput": {"length": " 5"}}, {"os-getConsoleOutput": {"x": 1}},
        ]
        for field, values in (("name", WRONG["name"]), ("adminPass", [1, True, [], {}]),
                              ("metadata", WRONG["meta"]),
                              ("preserve_ephemeral", ["maybe", 2, [], {}]),
                              ("OS-DCF:diskConfig", [1, None, "SOMETIMES"]),
                              ("accessIPv4", [1, "300.1.1.1", None]),
                              ("accessIPv6", [1, "zz::1", None]),
                              ("personality", ["x", {}, [{"path": "/x", "contents": "eA=="}]]),
                              # newer than 2.1 (2.19, 2.54, 2.57), or not Nova's at all
                              ("description", ["x"]), ("key_name", [F["kp"]]),
                              ("user_data", ["eA=="]), ("no_such_field", [1])):
            for v in values:
                bad.append({"rebuild": {"imageRef": iid, field: v}})
        for b in bad:
            self.fault(400, "compute", "POST", act, b, what=json.dumps(b)[:80])
        # the argument is checked before the state: a stopped server cannot be stopped (409)
        self.fault(409, "compute", "POST", act, {"os-stop": None})
        # Nova's actions kova does not do: 501, not a silent 202
        A.set_server_state(F["sid"], "active")
        try:
            for b in ({"suspend": None}, {"shelve": None}, {"lock": None}):
                self.fault(501, "compute", "POST", act, b)
        finally:
            A.set_server_state(F["sid"], "stopped")

    def test_half_written_patch(self):
        # a patch whose last op is bad changes nothing of the ops before it
        iid = F["qid"]
        for ops in ([{"op": "replace", "path": "/name", "value": "half"},
                     {"op": "replace", "path": "/min_ram", "value": "x"}],
                    [{"op": "add", "path": "/prop1", "value": "v"},
                     {"op": "add", "path": "/prop2", "value": 5}],
                    [{"op": "add", "path": "/prop1", "value": "v"},
                     {"op": "remove", "path": "/prop-not-there"}],
                    [{"op": "replace", "path": "/name", "value": "half"},
                     {"op": "move", "from": "/name", "path": "/x"}],
                    [{"op": "replace", "path": "/name", "value": "half"}, {"op": "replace"}],
                    [{"op": "replace", "path": "/name", "value": "half"}, 1],
                    [{"op": "replace", "path": "name", "value": "x"}],
                    [{"op": "replace", "path": "/a/b", "value": "x"}],
                    [{"op": "replace", "path": "/name"}], [{"op": 1, "path": "/name"}]):
            st, _ = self.fault((400, 403, 409), "image", "PATCH", "/v2/images/%s" % iid, ops,
                               ctype=PATCH_CT, what=json.dumps(ops)[:80])
        # the same rule for server metadata: one bad item, none of the good ones is written
        self.fault(400, "compute", "POST", fill("/v2.1/servers/{sid}/metadata"),
                   {"metadata": {"good1": "v", "good2": "v", "bad": 1}})
        # a multi-create of which one does not fit leaves no server behind
        b = good_server()
        b["server"].update(min_count=5, max_count=5, key_name="no-such-key")
        self.fault(400, "compute", "POST", "/v2.1/servers", b)


class RebuildKeepsWhatItAccepts(unittest.TestCase):
    """A rebuild that passes the checks sets all it was given (Nova: metadata replaced, access
    IPs, disk config), none of it silently dropped. Its own server, settled and deleted."""

    def test_rebuild_sets_metadata_and_access_ips(self):
        def req(method, path, body=None, want=200):
            st, _, raw = send("compute", method, path, body,
                              ctype=JSON_CT if body is not None else None)
            self.assertEqual(st, want, raw[:300])
            return json.loads(raw) if raw else None

        def settled(sid):
            deadline = time.time() + 30
            while time.time() < deadline:
                st, _, raw = send("compute", "GET", "/v2.1/servers/" + sid)
                if st == 404:
                    return None
                s = json.loads(raw)["server"]
                if not s["OS-EXT-STS:task_state"] and s["status"] in ("ERROR", "SHUTOFF"):
                    return s
                time.sleep(0.05)
            self.fail("server %s did not settle" % sid)

        b = good_server()
        b["server"].update(name="rebuild-me", metadata={"old": "1"})
        sid = req("POST", "/v2.1/servers", b, want=202)["server"]["id"]
        try:
            settled(sid)
            req("POST", "/v2.1/servers/%s/action" % sid, {"rebuild": {
                "imageRef": F["iid"], "name": "rebuilt", "metadata": {"new": "2"},
                "accessIPv4": "10.1.2.3", "accessIPv6": "fd00::1", "OS-DCF:diskConfig": "AUTO",
                "preserve_ephemeral": False}}, want=202)
            s = settled(sid)
            self.assertEqual((s["name"], s["metadata"], s["accessIPv4"], s["accessIPv6"],
                              s["OS-DCF:diskConfig"]),
                             ("rebuilt", {"new": "2"}, "10.1.2.3", "fd00::1", "AUTO"))
            # past the metadata quota: 403 and nothing of the rebuild done
            req("POST", "/v2.1/servers/%s/action" % sid, {"rebuild": {
                "imageRef": F["iid"], "name": "again",
                "metadata": {"k%d" % i: "v" for i in range(129)}}}, want=403)
            self.assertEqual(settled(sid)["name"], "rebuilt")
        finally:
            send("compute", "DELETE", "/v2.1/servers/" + sid)
            deadline = time.time() + 30
            while time.time() < deadline and settled(sid) is not None:
                time.sleep(0.05)


# --------------------------------------------------------------------------- queries

# list routes: (svc, path, token, query, statuses)
LIST_QUERIES = []
for _svc, _path, _tok in (("compute", "/v2.1/servers", DEMO),
                          ("compute", "/v2.1/servers/detail", DEMO),
                          ("compute", "/v2.1/servers/detail", ADMIN),
                          ("compute", "/v2.1/flavors", DEMO),
                          ("compute", "/v2.1/flavors/detail", ADMIN),
                          ("compute", "/v2.1/images", DEMO),
                          ("compute", "/v2.1/images/detail", DEMO),
                          ("image", "/v2/images", DEMO)):
    for _q in ("limit=-1", "limit=abc", "limit=", "limit", "limit=1.5", "limit=+1",
               "limit=%201", "limit=1&limit=x", "limit=x&limit=1", "limit=0x10",
               "marker=unknown", "marker=" + UUID0, "marker=%00", "marker=" + "m" * 4000):
        LIST_QUERIES.append((_svc, _path, _tok, _q, (400,)))
    if _path != "/v2.1/images" and _path != "/v2.1/images/detail":
        for _q in ("sort_key=bogus", "sort_key=%00", "sort_dir=sideways", "sort_key=name&"
                   "sort_dir=up", "sort_key=" + "k" * 3000):
            LIST_QUERIES.append((_svc, _path, _tok, _q, (400,)))
for _path in ("/v2.1/servers", "/v2.1/servers/detail", "/v2.1/images", "/v2.1/images/detail"):
    for _q in ("changes-since=garbage", "changes-since=", "changes-since=2020-13-45T00:00:00Z",
               "changes-since=2020-01-01T25:00:00Z", "changes-since=%00",
               "changes-since=99999999999-01-01T00:00:00Z"):
        LIST_QUERIES.append(("compute", _path, DEMO, _q, (400,)))
for _q in ("name=(", "name=%5B", "name=" + "a" * 300, "name=\\1", "sort_key=a&sort_key=b&"
           "sort_key=c&sort_key=d&sort_key=e&sort_key=f&sort_key=g&sort_key=h&sort_key=i"
           "&sort_key=j&sort_key=k&sort_key=l&sort_key=m&sort_key=n&sort_key=o&sort_key=p"
           "&sort_key=q", "sort_dir=asc&sort_dir=desc"):
    LIST_QUERIES.append(("compute", "/v2.1/servers", DEMO, _q, (400,)))
LIST_QUERIES.append(("compute", "/v2.1/servers/detail", ADMIN, "status=NOSUCH", (400,)))
for _q in ("minRam=x", "minRam=-1", "minDisk=x", "minDisk=-5", "is_public=maybe"):
    LIST_QUERIES.append(("compute", "/v2.1/flavors/detail", ADMIN, _q, (400,)))
for _q in ("visibility=everyone", "status=nosuch", "protected=maybe", "member_status=x",
           "size_min=-1", "size_max=x", "created_at=garbage", "updated_at=gt:garbage",
           "sort=bogus", "sort=name:sideways", "sort=name&sort_key=name", "sort=" + "a" * 600,
           "sort=,", "sort_key=name&sort_key=id&sort_dir=asc&sort_dir=desc&sort_dir=asc"):
    LIST_QUERIES.append(("image", "/v2/images", DEMO, _q, (400,)))

# queries every route must survive (it may ignore them: no 5xx, JSON when it says so)
ANY_QUERIES = ["%zz", "%zz=%zz", "a=%00", "=", "&&&", "x=" + "y" * 6000,
               "&".join("r=%d" % i for i in range(300)), "limit=5&" * 50, "%C3%28=%FF",
               "all_tenants=1&project_id=%2e%2e", "fields=" + ",".join(["x"] * 100)]


class Queries(Sweep):
    def test_bad_list_parameters(self):
        for svc, path, tok, q, want in LIST_QUERIES:
            self.fault(want, svc, "GET", path + "?" + q, token=tok, what="query")

    def test_marker_of_an_unseen_row(self):
        # another project's private image or server, a private flavor: not a marker (400), as
        # if it did not exist
        self.fault(400, "image", "GET", "/v2/images?marker=" + F["other_priv"])
        self.fault(400, "compute", "GET", "/v2.1/images?marker=" + F["other_priv"])
        self.fault(400, "compute", "GET", "/v2.1/images/detail?marker=" + F["other_priv"])
        self.fault(400, "compute", "GET", "/v2.1/flavors?marker=hostile-private")
        self.fault(400, "compute", "GET", "/v2.1/servers?marker=" + F["sid"],
                   token="other:otherproj")

    def test_name_filter_cannot_exhaust_the_agent(self):
        # glibc's regcomp expands bounded repetition: "(.*){1,32000}" took gigabytes and the
        # agent was killed (OOM) by one GET of any member
        for pat in ("(.*){1,32000}", "(.*){,32000}", "(.*){1000,}", "((a{50}){50}){50}",
                    "x{2}{3}{4}{5}{6}{7}", "(" * 40 + "a" + ")" * 40, "a{1000", "{1000}"):
            t0 = time.monotonic()
            self.fault(400, "compute", "GET", "/v2.1/servers/detail?name=" +
                       urllib.parse.quote(pat), what=pat)
            self.assertLess(time.monotonic() - t0, 5, pat)
        for pat in ("vm-[0-9]{3}", "^web-(prod|stage)-[[:digit:]]+$", "[]a]{5}", "a{,5}",
                    "(a*)*", "(.){1}", "x{2}{3}"):
            self.assertEqual(self.answer("compute", "GET", "/v2.1/servers?name=" +
                                         urllib.parse.quote(pat), what=pat), 200, pat)

    def test_every_get_survives_hostile_queries(self):
        for svc, m, t, tok, _ in ROUTES:
            if m != "GET":
                continue
            for q in ANY_QUERIES:
                self.answer(svc, m, fill(t) + "?" + q, token=tok or DEMO, what="query")


# --------------------------------------------------------------------------- headers

BAD_VERSIONS = [("2.a", 400), ("abc", 400), ("2", 400), ("2.1.1", 400), ("02.1", 400),
                ("2.01", 400), ("+2.1", 400), ("2.+1", 400), ("2.-1", 400), ("-2.1", 400),
                (". ", 400), ("2. 1", 400), ("0.1", 400), ("2.1x", 400), ("\u00e92.1", 400),
                ("2.0", 406), ("3.0", 406), ("1.1", 406), ("2.999", 406),
                ("2.99999999999999999999999", 406), ("99999999999999999999.1", 406),
                ("2.1" + "0" * 70, 406), ("2.1" + "0" * 70 + "x", 400),
                ("2.1" + " " * 70 + "x", 400)]


def send_ok(r):
    """Route r's good request: (svc, method, path, body, token, Content-Type)."""
    svc, m, t, tok, good = r
    body = good() if good else None
    return svc, m, fill(t), body, tok, default_ctype(svc, m, t, body)


class Headers(Sweep):
    def test_bad_microversions(self):
        for r in ROUTES:
            svc, m, path, body, tok, ct = send_ok(r)
            if svc != "compute" or not path.startswith("/v2.1/"):
                continue
            for v, want in BAD_VERSIONS:
                # http.client sends str headers as latin-1
                hv = v.encode("utf-8").decode("latin-1")
                self.fault(want, svc, m, path, body, tok, ct,
                           {"X-OpenStack-Nova-API-Version": hv}, what="mv " + v)
                self.fault(want, svc, m, path, body, tok, ct,
                           {"OpenStack-API-Version": "compute " + hv}, what="mv " + v)

    def test_bad_content_type(self):
        bad = ["application/xml", "text/html", "multipart/form-data; boundary=x",
               "application/x-www-form-urlencoded", "application/jsonx", "json", "*/*",
               "application/octet-stream"]
        for r in ROUTES:
            svc, m, path, body, tok, ct = send_ok(r)
            if svc == "compute" and path.startswith("/identity"):
                if m == "POST":
                    for c in bad:
                        self.fault(400, svc, m, path, body, tok, c, what="ct " + c)
                continue
            if svc == "image":
                if path.endswith("/file") and m == "PUT":
                    for c in bad[:-1] + [JSON_CT, "", "text/plain"]:
                        self.fault(415, svc, m, path, body, tok, c, what="ct " + c)
                    self.fault(415, svc, m, path, body, tok, None, what="no ct")
                elif m == "PATCH":
                    for c in bad + ["", "text/plain"]:
                        self.fault(415, svc, m, path, body, tok, c, what="ct " + c)
                    self.fault(415, svc, m, path, body, tok, None, what="no ct")
                continue
            # Nova: every method, a body or not
            for c in bad:
                self.fault(415, svc, m, path, body, tok, c, what="ct " + c)

    def test_auth_and_policy(self):
        for r in ROUTES:
            svc, m, path, body, tok, ct = send_ok(r)
            if tok is None:
                continue
            for t in (None, "", ":", "a/b:c", "a b", "x" * 300, "\u00e9:p"):
                hdr = None if t is None else t.encode("utf-8").decode("latin-1")
                self.fault(401, svc, m, path, body, hdr, ct, what="token %r" % t)
            if tok == ADMIN:
                self.fault(403, svc, m, path, body, DEMO, ct, what="not admin")
        # another project's limits are the admins' (Nova: 403 for tenant_id, even one's own)
        for t in ("other", "demo", "", "%00"):
            self.fault(403, "compute", "GET", "/v2.1/limits?tenant_id=" + t)

    def test_other_headers_are_harmless(self):
        # headers the agent reads besides those above: a hostile one changes nothing but itself
        for r in ROUTES:
            svc, m, path, body, tok, ct = send_ok(r)
            if m != "GET":
                continue
            for h in ({"Host": "["}, {"Host": "a:b:c"}, {"Host": "h" * 300},
                      {"Host": "x\"y"}, {"Host": ""}, {"Accept-Encoding": ";;;,,,q=,gzip;q="},
                      {"Accept-Encoding": "gzip;q=2, *;q=-1"},
                      {"Accept-Encoding": "x" * 8000}, {"Accept": "application/xml"},
                      {"Accept": "*/*;q=abc"}, {"OpenStack-API-Version": "volume 3.0, ,,"},
                      {"OpenStack-API-Version": "compute"}, {"X-Forwarded-For": "\x7f" * 10}):
                st = self.answer(svc, m, path, body, tok or DEMO, ct, h, what=repr(h)[:60])
                self.assertNotIn(st, (401, 403, 405, 415), (path, h))

    def test_huge_headers(self):
        for r in ROUTES:
            svc, m, path, body, tok, ct = send_ok(r)
            self.fault(431, svc, m, path, body, tok, ct, {"X-Pad": "a" * 20000},
                       what="20 KB header")
            self.fault(431, svc, m, path, body, tok, ct,
                       {"X-Pad-%d" % i: "b" * 200 for i in range(100)}, what="100 headers")
        # far beyond: libmicrohttpd answers 431 (or 414/400) itself, without a kova fault
        s = socket.create_connection(("127.0.0.1", A.port))
        s.sendall(b"GET /v2.1/flavors HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 200000 +
                  b"\r\nConnection: close\r\n\r\n")
        s.settimeout(30)
        out = b""
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    break
                out += d
        except OSError:
            pass
        s.close()
        self.sent += 1
        self.assertTrue(out == b"" or int(out.split()[1]) in (400, 413, 414, 431), out[:100])


def configure(opts):
    global AGENT_BIN, AUTH_CONF, FIELDS
    AGENT_BIN = opts["--agent"]
    if opts.get("--auth-conf"):
        with open(opts["--auth-conf"]) as f:
            AUTH_CONF = f.read()
        with open(opts["--tokens"]) as f:
            TOKENS.update(json.load(f))
        ROUTES[:] = [r for r in ROUTES if not r[2].startswith("/identity")]
        FIELDS = [x for x in FIELDS if not x[1].startswith("/identity")]


if __name__ == "__main__":
    sys.exit(unittest_main(__doc__, configure, options=("--agent", "--auth-conf", "--tokens")))
