// The protobuf text format's grammar, without a schema: a message is a list of fields,
// a field is `name: scalar`, `name: [scalar, ...]`, `name { fields }` (the ':' before a
// message is optional, and '<' '>' may stand for the braces), or `name [ {..}, {..} ]`.
// Fields may be separated by ',' or ';'. The result keeps every field in order with its
// position; text-message.ts types it against the Caffe schema.
import type { ModelFormatError } from '../errors.js';
import { PrototxtLexer, type Token } from './prototxt-lexer.js';

export interface TextScalar {
  kind: 'scalar';
  token: Token;
  /** A '-' came before the token (numbers, inf, nan). */
  negative: boolean;
}

export interface TextMessage {
  kind: 'message';
  fields: TextField[];
  line: number;
  column: number;
}

export interface TextField {
  name: string;
  line: number;
  column: number;
  value: TextScalar | TextMessage;
}

/** Deeper nesting than any Caffe file needs; it keeps a hostile file from exhausting the stack. */
const MAX_DEPTH = 64;
/**
 * Far more fields than any net (a ResNet-152 training prototxt has about 20 000); each costs
 * a few hundred bytes parsed and typed, so this bounds what a hostile file can make us build.
 */
const MAX_FIELDS = 500_000;

export function parsePrototxt(text: string, file: string): TextMessage {
  return new PrototxtParser(new PrototxtLexer(text, file)).parseFile();
}

class PrototxtParser {
  private fieldCount = 0;

  constructor(private readonly lex: PrototxtLexer) {}

  private fail(tok: Token, detail: string): ModelFormatError {
    return this.lex.error(tok.line, tok.column, detail);
  }

  private describe(tok: Token): string {
    if (tok.kind === 'eof') return 'the end of the file';
    if (tok.kind === 'string') return `the string ${JSON.stringify(tok.text)}`;
    return `"${tok.text}"`;
  }

  private expectSymbol(sym: string, what: string): Token {
    const tok = this.lex.next();
    if (tok.kind !== 'symbol' || tok.text !== sym) throw this.fail(tok, `expected '${sym}' ${what}, found ${this.describe(tok)}`);
    return tok;
  }

  private isSymbol(tok: Token, ...syms: string[]): boolean {
    return tok.kind === 'symbol' && syms.includes(tok.text);
  }

  parseFile(): TextMessage {
    const fields = this.parseFields(null, 0);
    return { kind: 'message', fields, line: 1, column: 1 };
  }

  /** Fields up to `close` ('}' or '>'; null: the end of the file), which is consumed. */
  private parseFields(close: string | null, depth: number): TextField[] {
    const fields: TextField[] = [];
    for (;;) {
      const tok = this.lex.peek();
      if (close === null ? tok.kind === 'eof' : this.isSymbol(tok, close)) {
        this.lex.next();
        return fields;
      }
      if (tok.kind === 'eof') throw this.fail(tok, `expected '${close}' to close the message, found the end of the file`);
      this.parseField(fields, depth);
      const sep = this.lex.peek();
      if (this.isSymbol(sep, ',', ';')) this.lex.next();
    }
  }

  private parseField(into: TextField[], depth: number): void {
    const nameTok = this.lex.next();
    if (this.isSymbol(nameTok, '[')) throw this.fail(nameTok, 'extension and Any fields ([name]) are not supported');
    if (nameTok.kind !== 'ident') throw this.fail(nameTok, `expected a field name, found ${this.describe(nameTok)}`);
    const add = (value: TextScalar | TextMessage): void => {
      // every value of a list counts: `dim: [1, 2, ...]` is the field repeated
      if (++this.fieldCount > MAX_FIELDS) throw this.fail(nameTok, `more than ${MAX_FIELDS} fields, far beyond any real net`);
      into.push({ name: nameTok.text, line: nameTok.line, column: nameTok.column, value });
    };

    let tok = this.lex.peek();
    const colon = this.isSymbol(tok, ':');
    if (colon) {
      this.lex.next();
      tok = this.lex.peek();
    }
    if (this.isSymbol(tok, '{', '<')) {
      add(this.parseMessage(depth));
      return;
    }
    if (this.isSymbol(tok, '[')) {
      this.lex.next();
      // [] is an empty list; otherwise values separated by ',' (all scalars or all messages)
      if (this.isSymbol(this.lex.peek(), ']')) {
        this.lex.next();
        return;
      }
      for (;;) {
        const item = this.lex.peek();
        if (this.isSymbol(item, '{', '<')) add(this.parseMessage(depth));
        else if (colon) add(this.parseScalar());
        else throw this.fail(item, `expected ':' after "${nameTok.text}" before a list of values`);
        const sep = this.lex.next();
        if (this.isSymbol(sep, ']')) return;
        if (!this.isSymbol(sep, ',')) throw this.fail(sep, `expected ',' or ']' in the list of "${nameTok.text}", found ${this.describe(sep)}`);
      }
    }
    if (!colon) throw this.fail(tok, `expected ':' or '{' after the field name "${nameTok.text}", found ${this.describe(tok)}`);
    add(this.parseScalar());
  }

  private parseMessage(depth: number): TextMessage {
    const open = this.lex.next();
    if (depth + 1 > MAX_DEPTH) throw this.fail(open, `messages nested more than ${MAX_DEPTH} deep`);
    const fields = this.parseFields(open.text === '{' ? '}' : '>', depth + 1);
    return { kind: 'message', fields, line: open.line, column: open.column };
  }

  /** An identifier, a number or a string (adjacent strings concatenate), optionally after '-'. */
  private parseScalar(): TextScalar {
    let tok = this.lex.next();
    let negative = false;
    if (this.isSymbol(tok, '-')) {
      negative = true;
      const sign = tok;
      tok = this.lex.next();
      if (tok.kind !== 'number' && tok.kind !== 'ident') throw this.fail(sign, `'-' must be followed by a number, found ${this.describe(tok)}`);
      // the value starts at its sign, which is where errors about it point
      tok = { ...tok, line: sign.line, column: sign.column };
    }
    if (tok.kind === 'string') {
      let text = tok.text;
      while (this.lex.peek().kind === 'string') text += this.lex.next().text;
      return { kind: 'scalar', token: { ...tok, text }, negative };
    }
    if (tok.kind === 'number' || tok.kind === 'ident') return { kind: 'scalar', token: tok, negative };
    throw this.fail(tok, `expected a value, found ${this.describe(tok)}`);
  }
}
