"""Random request bodies for the differential test: valid model bodies with
byte-level mutations, values swapped for tricky tokens, truncations and
trailing bytes ("general"), mutated RFC 3339 strings ("time"), or number
literals of every magnitude ("float").
Usage: gen_cases.py general|time|float SEED COUNT > cases"""
import base64
import random
import sys

mode, seed, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)

SEEDS = {
    "chat": [
        b'{"message_id":"m","content":"a<&>\\u00e9\\ud83d\\ude00\\u2028","created_at":'
        b'"2024-01-02T03:04:05.5+07:00","stream_id":"s","sender_id":"a","receiver_id":"b"}',
        b'{"content":"x","stream_id":"s","sender_id":"a","receiver_id":"b",'
        b'"created_at":"0001-01-01T00:00:00Z"}',
        b'{"Content":"x","STREAM_ID":"s","sender_id":"a","receiver_id":null,"created_at":null}',
    ],
    "purchase": [
        b'{"order_id":"o","buyer_id":"b","shop_owner_id":"s","product_name":"p","amount":15.99,'
        b'"currency":"USD","status":"confirmed","purchased_at":"2025-01-02T03:04:05.678901234-05:30"}',
    ],
    "payment": [
        b'{"order_id":"o","amount":-1.5e3,"currency":"USD","due_date":"2025-01-09T00:00:00Z",'
        b'"days_overdue":3,"message":"m"}',
        b'{"order_id":"o","amount":1e-7,"currency":"USD","due_date":"0001-01-01T00:00:00+00:00",'
        b'"days_overdue":-9223372036854775808}',
    ],
    "shipping": [
        b'{"order_id":"o","tracking_number":"t","status":"s","location":"l","estimated_delivery":'
        b'"2025-02-28T23:59:59.999999999+14:00","updated_at":"2024-02-29T1:02:03,5Z"}',
    ],
}
ALPHABET = b'{}[]":,\\u0123456789abcdefEZT+-.tnrl \xff\xc3\xa9\x01\x08\x0c/<>&'
TOKENS = [b'null', b'true', b'1e400', b'3.5', b'-0', b'"2024-13-01T00:00:00Z"',
          b'"2023-02-29T00:00:00Z"', b'"2024-01-01T24:00:00Z"', b'"2024-01-01T00:00:00+24:00"',
          b'"2024-01-01T00:00:00+25:00"', b'"2024-01-01 00:00:00Z"', b'"abc"', b'[1,2]',
          b'{"a":1}', b'0', b'1e21', b'123456789012345678', b'"\\ud800"', b'"x\\ty"',
          b'9223372036854775808', b'0.1', b'"2024-01-01T00:00:00.1234567891Z"',
          b'"2024-01-01T00:00:00Zjunk"', b'"2024-01-01T00:00:00+07:60"',
          b'"\\u0032024-01-01T00:00:00Z"', b'5e-324', b'1.7976931348623157e308', b'""']


def value_end(b, i):
    depth = 0
    j = i
    while j < len(b) and not (depth == 0 and b[j] in b',}'):
        if b[j] in b'[{':
            depth += 1
        elif b[j] in b']}':
            depth -= 1
        elif b[j] == ord('"'):
            j += 1
            while j < len(b) and b[j] != ord('"'):
                j += 2 if b[j] == ord('\\') else 1
        j += 1
    return j


def general():
    model = rng.choice(list(SEEDS))
    b = bytearray(rng.choice(SEEDS[model]))
    for _ in range(rng.randint(0, 4)):
        op = rng.randrange(5)
        pos = rng.randrange(len(b) + 1)
        if op == 0 and b:
            b[min(pos, len(b) - 1)] = rng.choice(ALPHABET)
        elif op == 1:
            b[pos:pos] = bytes([rng.choice(ALPHABET)])
        elif op == 2 and b:
            del b[min(pos, len(b) - 1)]
        elif op == 3:
            colons = [i for i, c in enumerate(b) if c == ord(':')]
            if colons:
                i = rng.choice(colons) + 1
                b[i:value_end(b, i)] = rng.choice(TOKENS)
        else:
            b = b[:pos]
    if rng.random() < 0.05:
        b = bytearray(b' ' + b + b' trailing')
    return model, bytes(b)


TIMES = ["2024-01-02T03:04:05Z", "2024-02-29T23:59:59.123456789+14:00", "0001-01-01T00:00:00Z",
         "9999-12-31T23:59:59-23:59", "2024-01-02T03:04:05,5-05:30", "2023-12-31T1:02:03+24:00"]
TIME_CHARS = "0123456789-:TZ+.,tz \\\"\xe9x"


def time_case():
    t = list(rng.choice(TIMES))
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(3)
        pos = rng.randrange(len(t) + 1)
        if op == 0 and t:
            t[min(pos, len(t) - 1)] = rng.choice(TIME_CHARS)
        elif op == 1:
            t.insert(pos, rng.choice(TIME_CHARS))
        elif t:
            del t[min(pos, len(t) - 1)]
    s = "".join(t)
    s = s.replace('"', '\\"') if rng.random() < 0.5 else s.replace('\\', '').replace('"', '')
    body = '{"order_id":"o","amount":1,"currency":"USD","due_date":"%s"}' % s
    return "payment", body.encode("utf-8")


def float_case():
    k = rng.randint(-30, 30)
    x = rng.uniform(-10, 10) * 10.0 ** k
    forms = [repr(x), "%.*e" % (rng.randint(0, 20), x), "%.*f" % (rng.randint(0, 8), x),
             str(rng.randint(-10 ** 18, 10 ** 18)), "%de%d" % (rng.randint(1, 99), rng.randint(-330, 310))]
    lit = rng.choice(forms)
    body = '{"order_id":"o","amount":%s,"currency":"USD","due_date":"2025-01-01T00:00:00Z",' \
           '"days_overdue":%s}' % (lit, rng.choice([lit, "1", str(rng.randint(-2 ** 63, 2 ** 63))]))
    return "payment", body.encode()


MODES = {"general": general, "time": time_case, "float": float_case}
for _ in range(count):
    model, body = MODES[mode]()
    print(model + "\t" + base64.b64encode(body).decode())
