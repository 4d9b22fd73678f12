// Types a parsed prototxt against the Caffe schema: scalars become numbers, booleans,
// strings or enum names as the field's declared type says, nested messages recurse, and
// the result has the shape of a decoded caffemodel (messages.ts). Every mismatch (a float
// in an integer field, an unknown enum value, a message where a number belongs, a
// non-repeated field given twice) is an error at the value's line:column.
//
// Field names the schema subset does not declare are skipped: they are real Caffe fields
// Squall has no use for (weight_filler, param { lr_mult }, ...), as a binary reader skips
// unknown field numbers.
import protobuf from 'protobufjs';
import { ModelFormatError } from '../errors.js';
import { applyDefaults } from './message-defaults.js';
import { at } from './prototxt-lexer.js';
import type { TextField, TextMessage, TextScalar } from './prototxt-parser.js';

type Obj = Record<string, unknown>;

const INT_RANGES: Record<string, [number, number]> = {
  int32: [-(2 ** 31), 2 ** 31 - 1], sint32: [-(2 ** 31), 2 ** 31 - 1], sfixed32: [-(2 ** 31), 2 ** 31 - 1],
  uint32: [0, 2 ** 32 - 1], fixed32: [0, 2 ** 32 - 1],
  // 64-bit integers are kept as JavaScript numbers: exact up to 2^53, which any size in a model is below
  int64: [-Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER], sint64: [-Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  sfixed64: [-Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  uint64: [0, Number.MAX_SAFE_INTEGER], fixed64: [0, Number.MAX_SAFE_INTEGER],
};

export function typeTextMessage(msg: TextMessage, type: protobuf.Type, file: string): Obj {
  return applyDefaults(type, new TextTyper(file).message(msg, type));
}

class TextTyper {
  constructor(private readonly file: string) {}

  private fail(line: number, column: number, detail: string): ModelFormatError {
    return new ModelFormatError(this.file, at(line, column), detail);
  }

  message(msg: TextMessage, type: protobuf.Type): Obj {
    const out: Obj = {};
    const seen = new Set<string>();
    for (const tf of msg.fields) {
      const field = type.fields[tf.name];
      if (!field) continue;
      const value = this.value(tf, field, type);
      if (field.repeated) {
        ((out[field.name] ??= []) as unknown[]).push(value);
      } else {
        if (seen.has(field.name)) throw this.fail(tf.line, tf.column, `${type.name}.${field.name} is not repeated but is given more than once`);
        seen.add(field.name);
        out[field.name] = value;
      }
    }
    return out;
  }

  private value(tf: TextField, field: protobuf.Field, owner: protobuf.Type): unknown {
    const what = `${owner.name}.${field.name}`;
    const rt = field.resolvedType;
    if (rt instanceof protobuf.Type) {
      if (tf.value.kind !== 'message') {
        throw this.fail(tf.value.token.line, tf.value.token.column, `${what} is a message (${rt.name}): write ${field.name} { ... }`);
      }
      return this.message(tf.value, rt);
    }
    if (tf.value.kind === 'message') throw this.fail(tf.value.line, tf.value.column, `${what} is a ${rt instanceof protobuf.Enum ? `${rt.name} enum` : field.type}, not a message`);
    const s = tf.value;
    if (rt instanceof protobuf.Enum) return this.enumValue(s, rt, what);
    switch (field.type) {
      case 'float':
        return Math.fround(this.floatValue(s, what));
      case 'double':
        return this.floatValue(s, what);
      case 'bool':
        return this.boolValue(s, what);
      case 'string':
      case 'bytes':
        if (s.token.kind !== 'string' || s.negative) throw this.bad(s, what, 'a quoted string');
        return s.token.text;
      default: {
        const range = INT_RANGES[field.type];
        if (!range) throw this.bad(s, what, `a value of type ${field.type}`);
        return this.intValue(s, what, field.type, range);
      }
    }
  }

  private bad(s: TextScalar, what: string, expected: string): ModelFormatError {
    const found = s.token.kind === 'string' ? `the string ${JSON.stringify(s.token.text)}` : `"${s.negative ? '-' : ''}${s.token.text}"`;
    return this.fail(s.token.line, s.token.column, `${what} expects ${expected}, found ${found}`);
  }

  private intValue(s: TextScalar, what: string, type: string, [lo, hi]: [number, number]): number {
    const text = s.token.text;
    if (s.token.kind !== 'number' || !/^(0[xX][0-9a-fA-F]+|[0-9]+)$/.test(text)) throw this.bad(s, what, `an integer (${type})`);
    const magnitude = Number(text);
    const v = s.negative ? -magnitude : magnitude;
    if (!(v >= lo && v <= hi)) throw this.fail(s.token.line, s.token.column, `${what}: ${s.negative ? '-' : ''}${text} is out of the range of ${type} [${lo}, ${hi}]`);
    return v;
  }

  private floatValue(s: TextScalar, what: string): number {
    const text = s.token.text;
    let v: number;
    if (s.token.kind === 'number') {
      v = /^0[xX]/.test(text) ? Number(text) : Number(text.replace(/[fF]$/, ''));
    } else if (s.token.kind === 'ident' && /^(inf|infinity)f?$/i.test(text)) {
      v = Infinity;
    } else if (s.token.kind === 'ident' && /^nanf?$/i.test(text)) {
      v = NaN;
    } else {
      throw this.bad(s, what, 'a number');
    }
    if (Number.isNaN(v) && s.token.kind === 'number') throw this.bad(s, what, 'a number');
    return s.negative ? -v : v;
  }

  private boolValue(s: TextScalar, what: string): boolean {
    const text = s.token.text;
    if (!s.negative && s.token.kind === 'ident') {
      if (text === 'true' || text === 'True' || text === 't') return true;
      if (text === 'false' || text === 'False' || text === 'f') return false;
    }
    if (!s.negative && s.token.kind === 'number' && (text === '0' || text === '1')) return text === '1';
    throw this.bad(s, what, 'true or false');
  }

  private enumValue(s: TextScalar, e: protobuf.Enum, what: string): string {
    const names = Object.keys(e.values);
    if (s.token.kind === 'ident' && !s.negative) {
      if (e.values[s.token.text] !== undefined) return s.token.text;
    } else if (s.token.kind === 'number' && /^[0-9]+$/.test(s.token.text)) {
      const name = e.valuesById[(s.negative ? -1 : 1) * Number(s.token.text)];
      if (name !== undefined) return name;
    }
    const list = names.length > 12 ? `${names.slice(0, 12).join(', ')}, ...` : names.join(', ');
    throw this.bad(s, what, `one of ${e.name} (${list})`);
  }
}
