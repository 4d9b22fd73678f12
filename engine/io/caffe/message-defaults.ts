// Fills a decoded message object in the way messages.ts describes, from the schema: absent
// repeated fields become [], absent messages null, absent scalars with a proto2 [default]
// that default; absent scalars without one stay undefined. Used on the caffemodel's
// decoded objects and on the prototxt's typed objects alike.
import protobuf from 'protobufjs';

type Obj = Record<string, unknown>;

/** The declared [default = ...] of a field, with enum defaults as their names; undefined when none. */
function declaredDefault(field: protobuf.Field): unknown {
  const d = (field.options as Obj | undefined)?.['default'];
  if (d === undefined) return undefined;
  if (field.resolvedType instanceof protobuf.Enum && typeof d === 'number') return field.resolvedType.valuesById[d];
  // a float field holds the float32 nearest to its default, as a decoded value would
  if (field.type === 'float' && typeof d === 'number') return Math.fround(d);
  return d;
}

export function applyDefaults(type: protobuf.Type, obj: Obj): Obj {
  for (const field of type.fieldsArray) {
    const v = obj[field.name];
    const nested = field.resolvedType instanceof protobuf.Type ? field.resolvedType : null;
    if (field.repeated) {
      if (v === undefined) obj[field.name] = [];
      else if (nested) for (const m of v as Obj[]) applyDefaults(nested, m);
    } else if (nested) {
      if (v === undefined || v === null) obj[field.name] = null;
      else applyDefaults(nested, v as Obj);
    } else if (v === undefined) {
      const d = declaredDefault(field);
      if (d !== undefined) obj[field.name] = d;
    }
  }
  return obj;
}
