/* web_page: the bridge page and the fixed answers. */
#include "web_page.h"

#include <stdio.h>
#include <string.h>

/* The page's script. Placeholders: @WSPATH@ and @TOKEN@ (both checked by
 * the caller to be URL-safe, so no escaping is needed inside the string
 * literals). Limits follow the reference pages: 32 MiB and 16384 messages
 * queued towards the relay before it is open, 1 MiB per frame, 4096 frames
 * per message. */
static const char SCRIPT[] =
    "(function(){'use strict';\n"
    "var T=window.TelegramWebProxy,WSP='@WSPATH@',TOK='@TOKEN@';\n"
    "var QB=33554432,QN=16384,FMAX=1048576,NMAX=4096;\n"
    "var ws=null,open=false,done=false,welcomed=false,q=[],qb=0,out=null;\n"
    "function post(v){try{T.postMessage(v);}catch(e){}}\n"
    "function fail(){if(done)return;done=true;q=[];"
    "if(out)out.ctl({t:'status',state:'failed'});"
    "try{if(ws)ws.close(1000);}catch(e){}}\n"
    "function up(b){if(done)return;"
    "if(open){if(ws.bufferedAmount>QB){fail();return;}ws.send(b);return;}"
    "if(q.length>=QN||qb+b.byteLength>QB){fail();return;}q.push(b);qb+=b.byteLength;}\n"
    /* One relay message -> validated frames; the first must be WELCOME alone. */
    "function down(d){if(done)return;if(!(d instanceof ArrayBuffer)){fail();return;}"
    "var v=new DataView(d),o=0,n=0,fr=[];"
    "while(o<d.byteLength){if(d.byteLength-o<8||++n>NMAX){fail();return;}"
    "var l=v.getUint32(o+4);if(l>FMAX||l>d.byteLength-o-8){fail();return;}"
    "fr.push(d.slice(o,o+8+l));o+=8+l;}"
    "if(!fr.length){fail();return;}"
    "if(!welcomed){if(fr.length!==1||v.getUint8(0)!==17||d.byteLength!==8){fail();return;}"
    "welcomed=true;}"
    "out.bin(d,fr);}\n"
    "function ctl(c){if(c&&c.t==='close'){done=true;try{if(ws)ws.close(1000);}catch(e){}}}\n"
    "function carrier(){try{ws=new WebSocket((location.protocol==='https:'?'wss://':'ws://')"
    "+location.host+WSP,'tproxy-v1.'+TOK);}catch(e){fail();return false;}\n"
    "ws.binaryType='arraybuffer';\n"
    "ws.onopen=function(){if(done)return;open=true;for(var i=0;i<q.length;i++)ws.send(q[i]);"
    "q=[];qb=0;};\n"
    "ws.onmessage=function(ev){try{down(ev.data);}catch(e){fail();}};\n"
    "ws.onerror=ws.onclose=function(){fail();};return true;}\n"
    "addEventListener('pagehide',function(){done=true;try{if(ws)ws.close(1000);}catch(e){}});\n"
    /* The hidden WebView: the client's injected object, one frame per message. */
    "if(T&&typeof T.postMessage==='function'){\n"
    "var m=/^#android=([A-Za-z0-9_-]{43})$/.exec(location.hash);if(!m)return;\n"
    "try{history.replaceState(null,'',location.pathname);}catch(e){}\n"
    "out={bin:function(d,fr){for(var i=0;i<fr.length&&!done;i++)post(fr[i]);},"
    "ctl:function(o){post(JSON.stringify(o));}};\n"
    "T.onmessage=function(ev){try{var d=ev&&ev.data;"
    "if(typeof d==='string'){ctl(JSON.parse(d));return;}"
    "if(d instanceof ArrayBuffer){up(d);return;}fail();}catch(e){fail();}};\n"
    "if(carrier())post(JSON.stringify({t:'tproxy-android-init',v:1,nonce:m[1]}));\n"
    "return;}\n"
    /* The system-browser fallback: the client's loopback page frames us and
     * hands over a MessagePort, once, from the parent, with exactly {t,v};
     * on it, control messages are objects and binary ones whole batches. */
    "var inited=false;\n"
    "addEventListener('message',function(ev){try{"
    "if(inited||window.parent===window||ev.source!==window.parent)return;"
    "if(!/^http:\\/\\/127\\.0\\.0\\.1:[0-9]{1,5}$/.test(ev.origin))return;"
    "var d=ev.data;if(!d||typeof d!=='object'||Object.keys(d).length!==2||"
    "d.t!=='tproxy-init'||d.v!==1||!ev.ports||ev.ports.length!==1)return;"
    "inited=true;var p=ev.ports[0];"
    "out={bin:function(b){try{p.postMessage(b);}catch(e){}},"
    "ctl:function(o){try{p.postMessage(o);}catch(e){}}};"
    "p.onmessage=function(e){try{var x=e.data;if(x instanceof ArrayBuffer){up(x);return;}"
    "if(x&&typeof x==='object'){ctl(x);return;}fail();}catch(err){fail();}};"
    "try{history.replaceState(null,'',location.pathname);}catch(e){}"
    "carrier();}catch(e){}});\n"
    "})();\n";

static size_t put(char *out, size_t cap, size_t o, const char *s, size_t n)
{
    if (o == (size_t)-1 || o + n >= cap)
        return (size_t)-1;
    memcpy(out + o, s, n);
    return o + n;
}

static size_t puts_(char *out, size_t cap, size_t o, const char *s)
{
    return put(out, cap, o, s, strlen(s));
}

/* The script with its placeholders filled. */
static size_t script(const char *ws_path, const char *token, char *out, size_t cap)
{
    size_t o = 0;
    const char *p = SCRIPT;
    for (;;) {
        const char *a = strchr(p, '@');
        if (!a)
            break;
        o = put(out, cap, o, p, (size_t)(a - p));
        if (strncmp(a, "@WSPATH@", 8) == 0) {
            o = puts_(out, cap, o, ws_path);
            p = a + 8;
        } else if (strncmp(a, "@TOKEN@", 7) == 0) {
            o = puts_(out, cap, o, token);
            p = a + 7;
        } else {
            o = put(out, cap, o, "@", 1);
            p = a + 1;
        }
    }
    o = puts_(out, cap, o, p);
    return o;
}

size_t web_page_render(const char *host, const char *ws_path, const char *token,
                       const char *csp_nonce, char *out, size_t cap)
{
    char body[8192], js[6144];
    size_t jl = script(ws_path, token, js, sizeof js);
    if (jl == (size_t)-1)
        return 0;
    js[jl] = '\0';
    int bl = snprintf(body, sizeof body,
                      "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                      "<meta name=\"viewport\" content=\"width=device-width\">"
                      "<meta name=\"referrer\" content=\"no-referrer\">"
                      "<title></title></head><body>\n<script nonce=\"%s\">\n%s</script>\n"
                      "</body></html>\n",
                      csp_nonce, js);
    if (bl < 0 || (size_t)bl >= sizeof body)
        return 0;
    int n = snprintf(out, cap,
                     "HTTP/1.1 200 OK\r\n"
                     "Content-Type: text/html; charset=utf-8\r\n"
                     "Cache-Control: no-store\r\n"
                     "Referrer-Policy: no-referrer\r\n"
                     "X-Content-Type-Options: nosniff\r\n"
                     "X-DNS-Prefetch-Control: off\r\n"
                     "Permissions-Policy: camera=(), microphone=(), geolocation=(), "
                     "payment=(), usb=(), clipboard-read=(), clipboard-write=()\r\n"
                     "Content-Security-Policy: default-src 'none'; base-uri 'none'; "
                     "child-src 'none'; connect-src 'self' wss://%s; font-src 'none'; "
                     "form-action 'none'; frame-ancestors http://127.0.0.1:*; "
                     "frame-src 'none'; img-src 'none'; manifest-src 'none'; "
                     "media-src 'none'; object-src 'none'; script-src 'nonce-%s'; "
                     "style-src 'none'; worker-src 'none'; "
                     "sandbox allow-scripts allow-same-origin\r\n"
                     "Content-Length: %d\r\n"
                     "\r\n%s",
                     host, csp_nonce, bl, body);
    if (n < 0 || (size_t)n >= cap)
        return 0;
    return (size_t)n;
}

static size_t fixed(const char *text, char *out, size_t cap)
{
    size_t n = strlen(text);
    if (n >= cap)
        return 0;
    memcpy(out, text, n + 1);
    return n;
}

size_t web_page_site(int close, char *out, size_t cap)
{
    return fixed(close ? "HTTP/1.1 404 Not Found\r\n" WEB_SITE_MARKER ": site\r\n"
                         "Content-Length: 0\r\nConnection: close\r\n\r\n"
                       : "HTTP/1.1 404 Not Found\r\n" WEB_SITE_MARKER ": site\r\n"
                         "Content-Length: 0\r\n\r\n",
                 out, cap);
}

size_t web_page_not_found(int close, char *out, size_t cap)
{
    return fixed(close ? "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n"
                         "Cache-Control: no-store\r\nContent-Length: 10\r\n"
                         "Connection: close\r\n\r\nNot Found\n"
                       : "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n"
                         "Cache-Control: no-store\r\nContent-Length: 10\r\n\r\nNot Found\n",
                 out, cap);
}

size_t web_page_bad_request(char *out, size_t cap)
{
    return fixed("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                 out, cap);
}

size_t web_page_busy(char *out, size_t cap)
{
    return fixed("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n"
                 "Connection: close\r\n\r\n",
                 out, cap);
}

size_t web_page_upgrade(const char *accept, const char *proto, size_t proto_len, char *out,
                        size_t cap)
{
    int n = snprintf(out, cap,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
                     "Sec-WebSocket-Protocol: %.*s\r\n\r\n",
                     accept, (int)proto_len, proto);
    if (n < 0 || (size_t)n >= cap)
        return 0;
    return (size_t)n;
}
