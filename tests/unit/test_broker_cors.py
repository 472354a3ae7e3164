"""Automatic CORS (broker.transports.cors) as Pushpin 1.36's ``Cors::applyCorsHeaders`` answers."""

import asyncio

from broker.transports.cors import cors_headers, with_cors

ORIGIN_ANSWER = (("date", "d"), ("server", "s"), ("content-type", "text/plain"), ("x-origin", "yes"))


def added(request, response=ORIGIN_ANSWER):
    return dict(cors_headers(request, response)[len(response) :])


def test_a_plain_request_gets_every_method_its_origin_and_the_exposed_headers():
    assert added((("Origin", "http://page.test"),)) == {
        "Access-Control-Allow-Methods": "OPTIONS, HEAD, GET, POST, PUT, DELETE",
        "Access-Control-Expose-Headers": "date, server, x-origin",  # not Content-Type: safelisted
        "Access-Control-Allow-Credentials": "true",
        "Access-Control-Allow-Origin": "http://page.test",
        "Access-Control-Max-Age": "3600",
    }
    assert added(())["Access-Control-Allow-Origin"] == "*"  # no Origin


def test_a_preflight_is_allowed_the_method_and_every_header_it_asked_for():
    asked = (("Origin", "http://p"), ("Access-Control-Request-Method", "PUT"),
             ("Access-Control-Request-Headers", "x-a, X-B"), ("access-control-request-headers", "c,,"))  # fmt: skip
    got = added(asked)
    assert (got["Access-Control-Allow-Methods"], got["Access-Control-Allow-Headers"]) == ("PUT", "x-a, X-B, c")


def test_what_the_origin_set_itself_is_kept_and_grip_and_cors_headers_are_not_exposed():
    answer = (("Access-Control-Allow-Origin", "https://only.example"), ("Grip-Hold", "stream"), ("X-A", "1"),
              ("x-a", "2"), ("Cache-Control", "no-cache"))  # fmt: skip
    got = added((("Origin", "http://p"),), answer)
    assert "Access-Control-Allow-Origin" not in got and got["Access-Control-Expose-Headers"] == "X-A"
    assert "Access-Control-Expose-Headers" not in added((), (("Content-Type", "text/plain"),))


def test_the_send_wrapper_adds_them_to_the_answers_start_only():
    sent = []

    async def send(message):
        sent.append(message)

    wrapped = with_cors(send, [(b"origin", b"http://p")])
    asyncio.run(wrapped({"type": "http.response.start", "status": 200, "headers": [(b"x-a", b"1")]}))
    asyncio.run(wrapped({"type": "http.response.body", "body": b"x"}))
    assert (b"access-control-allow-origin", b"http://p") not in sent[0]["headers"]  # names as Pushpin writes them
    assert (b"Access-Control-Allow-Origin", b"http://p") in sent[0]["headers"] and sent[1] == {
        "type": "http.response.body", "body": b"x"}  # fmt: skip
