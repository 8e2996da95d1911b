// Fails the build when dist/index.html has anything the server's Content-Security-Policy
// (script-src 'self'; style-src 'self') would block: an inline script, a <style> element,
// a style attribute, an inline event handler, or a script or stylesheet from elsewhere.
import { readFileSync } from 'node:fs'

const html = readFileSync(new URL('../dist/index.html', import.meta.url), 'utf8')
const problems = []
for (const [, attrs, body] of html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)) {
  if (!/\bsrc=/.test(attrs) || body.trim() !== '') problems.push('an inline <script>')
  const src = /\bsrc="([^"]*)"/.exec(attrs)?.[1] ?? ''
  if (/^(https?:)?\/\//.test(src)) problems.push(`a script from elsewhere: ${src}`)
}
if (/<style\b/i.test(html)) problems.push('a <style> element')
if (/\sstyle=/i.test(html)) problems.push('a style attribute')
if (/\son[a-z]+=/i.test(html)) problems.push('an inline event handler')
for (const [, href] of html.matchAll(/<link\b[^>]*href="([^"]*)"/gi)) {
  if (/^(https?:)?\/\//.test(href)) problems.push(`a link to elsewhere: ${href}`)
}
if (problems.length > 0) {
  console.error(`dist/index.html breaks the Content-Security-Policy: ${problems.join('; ')}`)
  process.exit(1)
}
console.log('dist/index.html: no inline script or style')
