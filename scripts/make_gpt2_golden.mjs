// Writes tests/golden/gpt2_ids.jsonl: GPT-2 token ids of a few hundred varied strings, from an independent GPT-2
// encoder (the npm package gpt-tokenizer, encoding r50k_base = GPT-2), for tests/test_tokenizer_gpt2.cpp.
// Run at test-authoring time only:
//   cd /tmp/x && npm install gpt-tokenizer@4.0.0 && NODE_PATH=/tmp/x/node_modules node scripts/make_gpt2_golden.mjs
// The strings avoid U+0085 and U+FEFF, the two characters where JavaScript's \s and Unicode White_Space (which our
// pre-tokenizer follows, as the Rust and Python GPT-2 encoders do) disagree.
import { createRequire } from 'module';
import { writeFileSync } from 'fs';
const require = createRequire(process.env.NODE_PATH + '/');
const { encode } = require('gpt-tokenizer/cjs/encoding/r50k_base');

const fixed = [
  '', ' ', '  ', '\n', '\n\n', '\t', ' \n ', 'a', 'Hello world', 'Hello, world!', ' Hello', 'Hello  world',
  'Hello   world', 'Hello\n\nworld', 'Hello \n\n world', 'end.   ', '   start', 'tabs\t\tand\tspaces  \t mixed',
  "I'm sure you're right, they'll see it's done and we've said I'd go.", "DON'T SHOUT, it'S fine",
  "rock 'n' roll", "''quoted''", "the dogs' bones", "'tis the season", "O'Neill's", "can't won't shan't",
  '12345', '3.14159', '1,000,000', '2024-01-15T10:30:00Z', 'v1.2.3-rc4', '0x1F 0b1010 1e-9', '  42  ',
  'abc123def', '١٢٣ ٤٥٦', '½ ¼ ² ³ Ⅻ ⑦', 'Ünïcödé façade naïve café', 'Straße Größe', 'Ελληνικά γράμματα',
  'Русский текст, привет!', 'العربية نص', 'עברית', 'हिन्दी भाषा', '日本語のテキストです。', '中文文本，你好！',
  '한국어 텍스트', 'ภาษาไทย', 'emoji 😀😃 and 👍🏽 and 👨‍👩‍👧', 'flags 🇫🇷🇩🇪', 'e\u0301 combining a\u0308',
  'zero\u200bwidth', 'nb\u00a0sp and ideographic\u3000space', 'line\u2028sep para\u2029sep',
  'en\u2002em\u2003thin\u2009', '<|endoftext|> is text here'.replace('<|endoftext|>', '<|end|>'),
  'http://example.com/path?q=1&r=2#frag', 'user@example.org', 'C:\\Windows\\System32', '#include <stdio.h>',
  'int main() { return 0; }', 'def f(x):\n    return x ** 2\n', '    indented\n        more\n', '```code```',
  '$$\\frac{a}{b}$$', '"double" and \'single\' quotes', '«guillemets» „low“ “curly” ‘single’', '— – - ‒ ―',
  '...', '!!!???', '...and then', 'a-b_c.d/e\\f', '(parens) [brackets] {braces}', '@mention #hashtag',
  '\r\nwindows\r\nlines\r\n', 'trailing space ', 'trailing newline\n', '\n\nleading newlines',
  'A', 'AB', 'ABC', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', '                                        x',
  'The quick brown fox jumps over the lazy dog.', 'THE QUICK BROWN FOX', 'tHe QuIcK bRoWn FoX',
  'antidisestablishmentarianism', 'pneumonoultramicroscopicsilicovolcanoconiosis', 'supercalifragilistic',
  ' = = Valkyria Chronicles III = = \n', ' @-@ ', ' @,@ ', '1 @,@ 000', 'the 2011 @-@ 12 season',
  '\u00ad soft\u00adhyphen', 'ﬁ ligature ﬀ', '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math', 'Ⓐⓑⓒ circled', '\u0000nul', 'bell\u0007char',
  'mixed ١٢ and 12 and ½', 'x²+y²=z²', '100%', '$5.99', '€10,50', '£3', '¥1000', '₿0.5',
];

// Seeded generator (mulberry32) over fragments, so the file is the same every run.
let seed = 20240531;
const rand = () => {
  seed |= 0; seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const pick = (a) => a[Math.floor(rand() * a.length)];
const fragments = [
  'the', 'The', 'of', 'and', 'running', 'tokenizer', 'binary', 'Mixture', 'scales', 'café', 'naïve', 'Zürich',
  "it's", "you're", "we'll", "they've", "I'm", "she'd", "don't", "'s", "'ll", "'T", '42', '007', '3.5', '1,024',
  '2048', '١٢', '٣', 'Ⅻ', '½', 'привет', 'мир', '東京', '大阪', 'ソウル', '서울', 'שלום', 'سلام', 'नमस्ते', 'ελα',
  '😀', '👍🏽', '🚀', '🇯🇵', '!', '?', '.', ',', ';', ':', '-', '--', '—', '...', '"', "'", '(', ')', '[', ']',
  '{', '}', '<', '>', '/', '\\', '@', '#', '$', '%', '^', '&', '*', '_', '+', '=', '|', '~', '`',
  'e\u0301', 'a\u0308', '\u200b', '\u00ad', 'ﬁ', '𝔘',
];
const spaces = [' ', ' ', ' ', '', '', '  ', '   ', '\t', '\n', '\n\n', ' \n', '\n ', '\r\n', '\u00a0', '\u3000',
                '\u2009', '    ', '\t\t', ' \t '];
const generated = [];
for (let i = 0; i < 220; i++) {
  let s = rand() < 0.3 ? pick(spaces) : '';
  const n = 2 + Math.floor(rand() * 10);
  for (let k = 0; k < n; k++) s += pick(fragments) + pick(spaces);
  generated.push(s);
}

const lines = [...fixed, ...generated].map((text) => {
  if (/[\u0085\ufeff]/.test(text)) throw new Error('golden strings must avoid U+0085 and U+FEFF');
  return JSON.stringify({ text, ids: encode(text) });
});
writeFileSync(new URL('../tests/golden/gpt2_ids.jsonl', import.meta.url), lines.join('\n') + '\n');
console.log(`wrote ${lines.length} strings to tests/golden/gpt2_ids.jsonl`);
