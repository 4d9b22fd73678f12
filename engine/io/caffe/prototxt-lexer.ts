// Tokens of the protobuf text format (what Caffe's prototxt files are): identifiers, numbers,
// quoted strings with C escapes, and the punctuation { } < > [ ] : , ; - . '#' starts a
// comment to the end of the line. Every token carries its line and column (1-based) so
// that the parser and the typing step can say where a problem is.
import { ModelFormatError } from '../errors.js';

export type TokenKind = 'ident' | 'number' | 'string' | 'symbol' | 'eof';

export interface Token {
  kind: TokenKind;
  /** The identifier, the number's source text, the string's decoded value, or the symbol. */
  text: string;
  line: number;
  column: number;
}

export function at(line: number, column: number): string {
  return `line ${line}:${column}`;
}

const SYMBOLS = new Set(['{', '}', '<', '>', '[', ']', ':', ',', ';', '-']);
const SIMPLE_ESCAPES: Record<string, string> = {
  n: '\n', t: '\t', r: '\r', a: '\x07', b: '\b', f: '\f', v: '\v', '\\': '\\', "'": "'", '"': '"', '?': '?',
};

const isDigit = (c: string): boolean => c >= '0' && c <= '9';
const isIdentStart = (c: string): boolean => (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c === '_';
const isIdentPart = (c: string): boolean => isIdentStart(c) || isDigit(c);

export class PrototxtLexer {
  private pos = 0;
  private line = 1;
  private column = 1;
  private peeked: Token | null = null;

  constructor(private readonly text: string, private readonly file: string) {}

  error(line: number, column: number, detail: string): ModelFormatError {
    return new ModelFormatError(this.file, at(line, column), detail);
  }

  peek(): Token {
    if (!this.peeked) this.peeked = this.scan();
    return this.peeked;
  }

  next(): Token {
    const t = this.peek();
    this.peeked = null;
    return t;
  }

  private advance(n = 1): void {
    for (let i = 0; i < n; i++) {
      if (this.text[this.pos] === '\n') {
        this.line++;
        this.column = 1;
      } else {
        this.column++;
      }
      this.pos++;
    }
  }

  private skipSpaceAndComments(): void {
    while (this.pos < this.text.length) {
      const c = this.text[this.pos]!;
      if (c === '#') {
        while (this.pos < this.text.length && this.text[this.pos] !== '\n') this.advance();
      } else if (c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f' || c === '\v') {
        this.advance();
      } else {
        return;
      }
    }
  }

  private scan(): Token {
    this.skipSpaceAndComments();
    const line = this.line;
    const column = this.column;
    if (this.pos >= this.text.length) return { kind: 'eof', text: '', line, column };
    const c = this.text[this.pos]!;
    const start = this.pos;
    if (isIdentStart(c)) {
      while (this.pos < this.text.length && isIdentPart(this.text[this.pos]!)) this.advance();
      return { kind: 'ident', text: this.text.slice(start, this.pos), line, column };
    }
    if (isDigit(c) || (c === '.' && isDigit(this.text[this.pos + 1] ?? ''))) return this.scanNumber(line, column);
    if (c === '"' || c === "'") return { kind: 'string', text: this.scanString(c, line, column), line, column };
    if (SYMBOLS.has(c) || c === '.') {
      this.advance();
      return { kind: 'symbol', text: c, line, column };
    }
    throw this.error(line, column, `unexpected character ${JSON.stringify(c)}`);
  }

  /**
   * Decimal and hexadecimal integers, decimals with fraction and exponent, and the 'f'
   * suffix the text format allows on floats ("1.5f"). The sign is a separate '-' token.
   */
  private scanNumber(line: number, column: number): Token {
    const start = this.pos;
    const s = this.text;
    if (s[this.pos] === '0' && (s[this.pos + 1] === 'x' || s[this.pos + 1] === 'X')) {
      this.advance(2);
      const digitsAt = this.pos;
      while (this.pos < s.length && /[0-9a-fA-F]/.test(s[this.pos]!)) this.advance();
      if (this.pos === digitsAt) throw this.error(line, column, 'hexadecimal number without digits');
    } else {
      while (this.pos < s.length && isDigit(s[this.pos]!)) this.advance();
      if (s[this.pos] === '.') {
        this.advance();
        while (this.pos < s.length && isDigit(s[this.pos]!)) this.advance();
      }
      if (s[this.pos] === 'e' || s[this.pos] === 'E') {
        this.advance();
        if (s[this.pos] === '+' || s[this.pos] === '-') this.advance();
        const digitsAt = this.pos;
        while (this.pos < s.length && isDigit(s[this.pos]!)) this.advance();
        if (this.pos === digitsAt) throw this.error(line, column, `exponent without digits in "${s.slice(start, this.pos)}"`);
      }
      if (s[this.pos] === 'f' || s[this.pos] === 'F') this.advance();
    }
    // "12abc" is one bad token, not a number followed by a field name
    if (this.pos < s.length && isIdentPart(s[this.pos]!)) {
      while (this.pos < s.length && isIdentPart(s[this.pos]!)) this.advance();
      throw this.error(line, column, `malformed number "${s.slice(start, this.pos)}"`);
    }
    return { kind: 'number', text: s.slice(start, this.pos), line, column };
  }

  /** A quoted string with C escapes (\n \t \\ \" \' \? \a \b \f \v \r, octal \ooo, \xHH, \uXXXX, \UXXXXXXXX). */
  private scanString(quote: string, line: number, column: number): string {
    const s = this.text;
    this.advance();
    let out = '';
    // Octal and \x escapes are bytes (the text format's strings are byte strings); they are
    // collected and decoded as UTF-8 together with the plain characters around them.
    const bytes: number[] = [];
    const flushBytes = (): void => {
      if (bytes.length) out += Buffer.from(bytes).toString('utf8');
      bytes.length = 0;
    };
    for (;;) {
      if (this.pos >= s.length || s[this.pos] === '\n') throw this.error(line, column, 'unterminated string');
      const c = s[this.pos]!;
      if (c === quote) {
        this.advance();
        flushBytes();
        return out;
      }
      if (c !== '\\') {
        flushBytes();
        out += c;
        this.advance();
        continue;
      }
      const escLine = this.line;
      const escColumn = this.column;
      this.advance();
      const e = s[this.pos];
      if (e === undefined) throw this.error(line, column, 'unterminated string');
      if (SIMPLE_ESCAPES[e] !== undefined) {
        flushBytes();
        out += SIMPLE_ESCAPES[e];
        this.advance();
      } else if (e >= '0' && e <= '7') {
        let v = 0;
        for (let i = 0; i < 3 && s[this.pos] !== undefined && s[this.pos]! >= '0' && s[this.pos]! <= '7'; i++) {
          v = v * 8 + Number(s[this.pos]);
          this.advance();
        }
        if (v > 255) throw this.error(escLine, escColumn, `octal escape \\${v.toString(8)} is above \\377`);
        bytes.push(v);
      } else if (e === 'x' || e === 'X') {
        this.advance();
        const hex = /^[0-9a-fA-F]{1,2}/.exec(s.slice(this.pos, this.pos + 2))?.[0];
        if (!hex) throw this.error(escLine, escColumn, '\\x escape without hexadecimal digits');
        this.advance(hex.length);
        bytes.push(parseInt(hex, 16));
      } else if (e === 'u' || e === 'U') {
        const n = e === 'u' ? 4 : 8;
        this.advance();
        const hex = s.slice(this.pos, this.pos + n);
        if (!new RegExp(`^[0-9a-fA-F]{${n}}$`).test(hex)) throw this.error(escLine, escColumn, `\\${e} escape needs ${n} hexadecimal digits`);
        const cp = parseInt(hex, 16);
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) throw this.error(escLine, escColumn, `\\${e}${hex} is not a Unicode scalar value`);
        this.advance(n);
        flushBytes();
        out += String.fromCodePoint(cp);
      } else {
        throw this.error(escLine, escColumn, `unknown escape \\${e}`);
      }
    }
  }
}
