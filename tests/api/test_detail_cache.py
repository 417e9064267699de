# SPDX-License-Identifier: Apache-2.0
"""api.detail_cache: GET /servers and /servers/detail are served from a cache of rendered
replies (and gzip-encoded for clients that accept it); every write must show in the next GET.

Each list is fetched twice (the second is a cache hit) and once more with an extra query
argument the agent ignores (a fresh render: it is part of the cache key); the three bodies must
be byte-identical, match GET /servers/{id} (never cached) server by server, and the gzip body
must decompress to the same bytes.

usage: /usr/bin/python3 test_detail_cache.py --agent PATH/kova-agent
"""
import gzip
import http.client
import json
import os
import sys
import threading
import time
import unittest
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kova_agent_fixture import Agent, stop_checked, unittest_main  # noqa: E402

AGENT_BIN = None
A = None
ADMIN = "admin:admin"
DEMO = "demo:demo"
OTHER = "other:otherproj"
CONFIG = "[quota]\ninstances = -1\ncores = -1\nram = -1\n"


def setUpModule():
    global A
    A = Agent(AGENT_BIN, config_text=CONFIG).start()


def tearDownModule():
    stop_checked(A)


def raw(path, token=DEMO, headers=None, method="GET", body=None):
    """(status, headers (lower-case keys; repeated ones joined with ', '), body bytes)"""
    c = http.client.HTTPConnection("127.0.0.1", A.port, timeout=60)
    h = {"X-Auth-Token": token}
    if body is not None:
        body = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
        h["Content-Length"] = str(len(body))
    h.update(headers or {})
    # http.client adds Accept-Encoding: identity unless told not to; send only what was asked
    c.putrequest(method, path, skip_accept_encoding=True, skip_host="Host" in h)
    for k, v in h.items():
        c.putheader(k, v)
    c.endheaders(body)
    r = c.getresponse()
    data = r.read()
    hdrs = {}
    for k, v in r.getheaders():
        k = k.lower()
        hdrs[k] = hdrs[k] + ", " + v if k in hdrs else v
    c.close()
    return r.status, hdrs, data


def call(method, path, body=None, token=DEMO, status=None):
    st, h, b = raw(path, token, method=method, body=body)
    if status is not None and st != status:
        raise AssertionError("%s %s -> %d %r" % (method, path, st, b[:500]))
    return json.loads(b) if b else None


def make_image(token):
    c = http.client.HTTPConnection("127.0.0.1", A.image_port, timeout=60)
    # hw_firmware_type=uefi: servers of it end in ERROR at once, no VMM runs
    c.request("POST", "/v2/images", json.dumps({"name": "img", "disk_format": "raw",
                                                  "container_format": "bare",
                                                  "hw_firmware_type": "uefi"}),
              {"X-Auth-Token": token, "Content-Type": "application/json"})
    img = json.loads(c.getresponse().read())["id"]
    c.request("PUT", "/v2/images/%s/file" % img, b"kova" * 1024,
              {"X-Auth-Token": token, "Content-Type": "application/octet-stream"})
    r = c.getresponse()
    r.read()
    c.close()
    if r.status != 204:
        raise AssertionError("image upload: %d" % r.status)
    return img


def with_arg(path, arg):
    return path + ("&" if "?" in path else "?") + arg


class DetailCache(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.images = {DEMO: make_image(DEMO), OTHER: make_image(OTHER)}

    # ---- helpers

    def create(self, name, token=DEMO, metadata=None):
        body = {"server": {"name": name, "imageRef": self.images[token], "flavorRef": "1"}}
        if metadata:
            body["server"]["metadata"] = metadata
        return call("POST", "/v2.1/servers", body, token=token, status=202)["server"]["id"]

    def show(self, sid, token=DEMO):
        st, _, b = raw("/v2.1/servers/%s" % sid, token)
        return json.loads(b)["server"] if st == 200 else None

    def settle(self, ids, token=DEMO, timeout=30):
        """Waits until none of ids is building or has a task (the lifecycle is quiet)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            busy = [s for s in ids if (lambda v: v is not None and (
                v["status"] == "BUILD" or v["OS-EXT-STS:task_state"]))(self.show(s, token))]
            if not busy:
                return
            time.sleep(0.05)
        self.fail("servers still busy: %r" % busy)

    def get_list(self, path, token=DEMO, headers=None):
        """GETs path twice and once fresh; checks they agree and that gzip agrees; returns
        the parsed reply."""
        h = dict(headers or {})
        st1, h1, b1 = raw(path, token, h)
        self.assertEqual(st1, 200, b1[:300])
        st2, h2, b2 = raw(path, token, h)
        buster = "cache-buster=%s" % uuid.uuid4()
        st3, h3, b3 = raw(with_arg(path, buster), token, h)
        self.assertEqual((st2, st3), (200, 200))
        self.assertEqual(b1, b2, "a repeated GET %s differs" % path)
        # the fresh reply's next link (if any) carries the extra argument too
        b3 = b3.replace((buster + "&").encode(), b"")
        self.assertEqual(b1, b3, "the cached GET %s differs from a fresh one" % path)
        for hh in (h1, h2):
            self.assertEqual(int(hh["content-length"]), len(b1))
        for hh in (h1, h2, h3):
            self.assertNotIn("content-encoding", hh)
            self.assertIn("Accept-Encoding", hh.get("vary", ""))
            self.assertTrue(hh["content-type"].startswith("application/json"))
        sg, hg, bg = raw(path, token, dict(h, **{"Accept-Encoding": "gzip, deflate"}))
        self.assertEqual(sg, 200)
        self.assertEqual(hg.get("content-encoding"), "gzip")
        self.assertIn("Accept-Encoding", hg.get("vary", ""))
        self.assertEqual(int(hg["content-length"]), len(bg))
        self.assertEqual(gzip.decompress(bg), b1)
        return json.loads(b1)

    def check_detail(self, token=DEMO, query="", expect_ids=None):
        """/servers/detail, /servers and a paged walk agree with GET /servers/{id}."""
        det = self.get_list("/v2.1/servers/detail" + query, token)["servers"]
        lst = self.get_list("/v2.1/servers" + query, token)["servers"]
        ids = [s["id"] for s in det]
        self.assertEqual([s["id"] for s in lst], ids)
        if expect_ids is not None:
            self.assertEqual(ids, expect_ids)
        for s, l in zip(det, lst):
            self.assertEqual(s, self.show(s["id"], token))
            self.assertEqual(l, {"id": s["id"], "name": s["name"], "links": s["links"]})
        # paged, two at a time, following the next links as they are (like Nova's, they keep
        # the query's other arguments: filters, all_tenants)
        walked, path = [], "/v2.1/servers/detail" + query
        page = self.get_list(with_arg(path, "limit=2"), token)
        while True:
            walked += page["servers"]
            links = page.get("servers_links")
            if not links:
                break
            nxt = urllib.parse.urlsplit(links[0]["href"])
            args = urllib.parse.parse_qsl(nxt.query, keep_blank_values=True)
            self.assertEqual(dict(args)["marker"], page["servers"][-1]["id"])
            want = urllib.parse.parse_qsl(query.lstrip("?"), keep_blank_values=True)
            self.assertEqual([a for a in args if a[0] not in ("limit", "marker", "cache-buster")],
                             [a for a in want if a[0] not in ("limit", "marker")])
            page = self.get_list(nxt.path + "?" + nxt.query, token)
        self.assertEqual(walked, det)
        return det

    # ---- tests

    def test_1_writes_show_in_the_next_get(self):
        mine = [self.create("vm%d" % i, metadata={"n": str(i)}) for i in range(4)]
        theirs = [self.create("their%d" % i, token=OTHER) for i in range(2)]
        self.settle(mine)
        self.settle(theirs, token=OTHER)
        mine_desc, theirs_desc = list(reversed(mine)), list(reversed(theirs))
        self.check_detail(expect_ids=mine_desc)
        self.check_detail(OTHER, expect_ids=theirs_desc)
        allt = self.check_detail(ADMIN, "?all_tenants=1")
        self.assertEqual([s["id"] for s in allt if s["id"] in mine + theirs],
                         theirs_desc + mine_desc)
        self.assertIn("OS-EXT-SRV-ATTR:host", allt[0])
        self.assertNotIn("OS-EXT-SRV-ATTR:host", self.show(mine[0]))

        # rename
        call("PUT", "/v2.1/servers/%s" % mine[1], {"server": {"name": "renamed"}}, status=200)
        det = self.check_detail(expect_ids=mine_desc)
        self.assertEqual([s["name"] for s in det if s["id"] == mine[1]], ["renamed"])
        self.check_detail(OTHER, expect_ids=theirs_desc)
        self.assertIn("renamed", [s["name"] for s in self.check_detail(ADMIN, "?all_tenants=1")])

        # a state changed by another process (sqlite3 by hand), then metadata
        A.set_server_state(mine[2], "stopped")
        det = self.check_detail(expect_ids=mine_desc)
        self.assertEqual([s["status"] for s in det if s["id"] == mine[2]], ["SHUTOFF"])
        base = "/v2.1/servers/%s/metadata" % mine[2]
        call("POST", base, {"metadata": {"a": "1", "b": "2"}}, status=200)
        det = self.check_detail(expect_ids=mine_desc)
        self.assertEqual([s["metadata"] for s in det if s["id"] == mine[2]],
                         [{"n": "2", "a": "1", "b": "2"}])
        call("PUT", base + "/a", {"meta": {"a": "changed"}}, status=200)
        det = self.check_detail(expect_ids=mine_desc)
        self.assertEqual([s["metadata"]["a"] for s in det if s["id"] == mine[2]], ["changed"])
        call("DELETE", base + "/b", status=204)
        det = self.check_detail(expect_ids=mine_desc)
        self.assertEqual([s["metadata"] for s in det if s["id"] == mine[2]],
                         [{"n": "2", "a": "changed"}])
        call("PUT", base, {"metadata": {"only": "this"}}, status=200)
        det = self.check_detail(expect_ids=mine_desc)
        self.assertEqual([s["metadata"] for s in det if s["id"] == mine[2]], [{"only": "this"}])

        # delete: at once the list shows the delete under way, then the server is gone; a page
        # whose marker was the deleted server is now a 400, not the page cached before
        marker_page = "/v2.1/servers/detail?limit=2&marker=%s" % mine[0]
        self.get_list(marker_page)
        call("DELETE", "/v2.1/servers/%s" % mine[0], status=204)
        st, _, b = raw("/v2.1/servers/detail")
        row = [s for s in json.loads(b)["servers"] if s["id"] == mine[0]]
        self.assertTrue(row == [] or row[0]["OS-EXT-STS:task_state"] == "deleting", row)
        deadline = time.time() + 30
        while self.show(mine[0]) is not None and time.time() < deadline:
            time.sleep(0.05)
        self.assertIsNone(self.show(mine[0]))
        mine.remove(mine[0])
        mine_desc = list(reversed(mine))
        self.check_detail(expect_ids=mine_desc)
        for _ in range(2):
            st, _, b = raw(marker_page)
            self.assertEqual(st, 400, b[:300])
        self.check_detail(OTHER, expect_ids=theirs_desc)

        # create: the next GET lists it at once
        new = self.create("newcomer")
        st, _, b = raw("/v2.1/servers/detail")
        self.assertEqual(json.loads(b)["servers"][0]["id"], new)
        st, _, b = raw("/v2.1/servers")
        self.assertEqual(json.loads(b)["servers"][0]["name"], "newcomer")
        self.settle([new])
        mine_desc = [new] + mine_desc
        self.check_detail(expect_ids=mine_desc)
        self.check_detail(OTHER, expect_ids=theirs_desc)
        # another project's change shows in its own view and the admin's, not in demo's
        call("PUT", "/v2.1/servers/%s" % theirs[0], {"server": {"name": "their-new"}},
             token=OTHER, status=200)
        self.assertIn("their-new", [s["name"] for s in self.check_detail(OTHER)])
        self.assertIn("their-new",
                      [s["name"] for s in self.check_detail(ADMIN, "?all_tenants=1")])
        self.check_detail(expect_ids=mine_desc)

    def test_2_inputs_in_the_key(self):
        sid = self.create("keyed")
        self.settle([sid])
        # the base URL of the links follows the Host header; microversion headers
        a = self.get_list("/v2.1/servers/detail", headers={"Host": "example.test:8774"})
        b = self.get_list("/v2.1/servers/detail")
        self.assertTrue(a["servers"][0]["links"][0]["href"].startswith("http://example.test:"))
        self.assertTrue(b["servers"][0]["links"][0]["href"].startswith("http://127.0.0.1:"))
        self.assertEqual(self.get_list("/v2.1/servers/detail",
                                       headers={"OpenStack-API-Version": "compute 2.1"}), b)
        st, _, _ = raw("/v2.1/servers/detail", headers={"OpenStack-API-Version": "compute 2.99"})
        self.assertEqual(st, 406)
        # filters
        names = lambda q: [s["name"] for s in self.get_list("/v2.1/servers/detail" + q)["servers"]]
        self.assertEqual(names("?name=%5Ekeyed%24"), ["keyed"])
        self.assertEqual(names("?name=%5Ekeyed%24&name=nothing"), ["keyed"])  # first one counts
        self.assertEqual(names("?name=nothing&name=%5Ekeyed%24"), [])
        self.assertEqual(names("?status=ACTIVE"), [])
        # failures stay failures, however often they are asked and whatever was cached
        for q in ("?limit=x", "?limit=-1", "?name=%5B", "?marker=nope", "?limit=1&marker=" +
                  str(uuid.uuid4())):
            for _ in range(3):
                st, h, body = raw("/v2.1/servers/detail" + q)
                self.assertEqual(st, 400, (q, body[:200]))
                self.assertIn("badRequest", json.loads(body))
        self.assertEqual(raw("/v2.1/servers/detail", token="bad token")[0], 401)
        # the same project seen by an admin and by a user: admin-only keys only for the admin
        as_admin = self.get_list("/v2.1/servers/detail", token="admin:demo")["servers"]
        self.assertIn("OS-EXT-SRV-ATTR:host", as_admin[0])
        self.assertEqual([s["id"] for s in as_admin], [s["id"] for s in b["servers"]])
        self.assertNotIn("OS-EXT-SRV-ATTR:host", self.get_list("/v2.1/servers/detail")
                         ["servers"][0])
        self.assertEqual(raw("/v2.1/servers/detail", token=ADMIN)[0], 200)
        self.assertEqual(raw("/v2.1/servers/detail?status=NOPE", token=ADMIN)[0], 400)
        # many distinct keys (evictions) and an over-long query: still right
        for i in range(80):
            st, _, body = raw("/v2.1/servers/detail?x=%d" % i)
            self.assertEqual(json.loads(body), b)
        long_q = "?pad=" + "p" * 6000
        self.assertEqual(self.get_list("/v2.1/servers/detail" + long_q), b)

    def test_3_accept_encoding(self):
        sid = self.create("enc")
        self.settle([sid])
        path = "/v2.1/servers/detail"
        _, _, ident = raw(path)
        cases = {"gzip": True, "GZIP": True, "x-gzip": True, "gzip, deflate": True,
                 "deflate, gzip;q=0.5": True, "*": True, "br;q=1, *;q=0.1": True,
                 "gzip;q=0": False, "gzip; q=0.000": False, "*;q=0": False, "deflate": False,
                 "identity": False, "": False, "gzip;q=0, *": False, "*, gzip;q=0": False,
                 "gzip;q=2": False, "gzip;q=0.5x": False, "gzipx": False}
        for value, want in cases.items():
            st, h, body = raw(path, headers={"Accept-Encoding": value})
            self.assertEqual(st, 200)
            if want:
                self.assertEqual(h.get("content-encoding"), "gzip", value)
                self.assertEqual(gzip.decompress(body), ident, value)
            else:
                self.assertNotIn("content-encoding", h, value)
                self.assertEqual(body, ident, value)
        # errors are not gzip-encoded
        st, h, body = raw(path + "?limit=x", headers={"Accept-Encoding": "gzip"})
        self.assertEqual(st, 400)
        self.assertNotIn("content-encoding", h)
        json.loads(body)

    def test_4_concurrent_writes_read_your_writes(self):
        sid = self.create("race")
        self.settle([sid])
        stop = threading.Event()
        errors = []

        def reader():
            while not stop.is_set():
                for enc in ({}, {"Accept-Encoding": "gzip"}):
                    st, h, body = raw("/v2.1/servers/detail", headers=enc)
                    if st != 200:
                        errors.append(st)
                    if h.get("content-encoding") == "gzip":
                        body = gzip.decompress(body)
                    json.loads(body)

        threads = [threading.Thread(target=reader) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            for i in range(40):
                name = "race-%d" % i
                call("PUT", "/v2.1/servers/%s" % sid, {"server": {"name": name}}, status=200)
                for enc in ({}, {"Accept-Encoding": "gzip"}):
                    st, h, body = raw("/v2.1/servers/detail", headers=enc)
                    if h.get("content-encoding") == "gzip":
                        body = gzip.decompress(body)
                    got = [s["name"] for s in json.loads(body)["servers"] if s["id"] == sid]
                    self.assertEqual(got, [name])
        finally:
            stop.set()
            for t in threads:
                t.join()
        self.assertEqual(errors, [])


def configure(opts):
    global AGENT_BIN
    AGENT_BIN = opts["--agent"]


if __name__ == "__main__":
    sys.exit(unittest_main(__doc__, configure))
