// Interop check: mtcute's FakeTLS MTProxy transport through tgfront.
// Usage: node connect.mjs HOST PORT SECRET STATUS_FILE [TIMEOUT_MS]
// Connects with an ee-secret; tgfront relays to the fake DC, which writes
// what it parsed into STATUS_FILE (JSON).  Exits 0 once the fake DC has
// recorded an intact first MTProto request (req_pq_multi or req_pq).
import { readFileSync } from 'node:fs'
import { MemoryStorage } from '@mtcute/core'
import { MtProxyTcpTransport, TelegramClient } from '@mtcute/node'

const [host, portText, secret, statusFile, timeoutText] = process.argv.slice(2)
if (!statusFile) {
    console.error('usage: node connect.mjs HOST PORT SECRET STATUS_FILE [TIMEOUT_MS]')
    process.exit(2)
}
const timeoutMs = Number(timeoutText || 20000)
const REQ_PQ_MULTI = 0xbe7e8ef1
const REQ_PQ = 0x60469778

function dcStatus() {
    try {
        return JSON.parse(readFileSync(statusFile, 'utf8'))
    } catch {
        return null
    }
}

const tg = new TelegramClient({
    apiId: 1,
    apiHash: '00000000000000000000000000000000',
    storage: new MemoryStorage(),
    transport: new MtProxyTcpTransport({ host, port: Number(portText), secret }),
    logLevel: 2,
})

let transportError = null
tg.onError.add((err) => { transportError = err })
// connect() starts the auth key exchange; the fake DC never answers, so the
// promise never settles; we watch the DC's status file instead.
tg.connect().catch((err) => { transportError = err })

const started = Date.now()
const timer = setInterval(() => {
    const st = dcStatus()
    const conns = (st && st.connections) || []
    const hit = conns.find((c) => c.mtproto_constructor === REQ_PQ_MULTI || c.mtproto_constructor === REQ_PQ)
    if (hit) {
        console.log(`fake DC got MTProto constructor 0x${hit.mtproto_constructor.toString(16)} `
            + `for DC ${hit.dc} with tag ${hit.tag}`)
        finish(0)
    } else if (Date.now() - started > timeoutMs) {
        console.error('timeout: the fake DC saw no intact MTProto request;'
            + ` DC status: ${JSON.stringify(conns)}; client error: ${transportError}`)
        finish(1)
    }
}, 100)

function finish(code) {
    clearInterval(timer)
    // do not wait for mtcute's reconnect logic
    process.exit(code)
}
