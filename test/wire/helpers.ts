import type { Result } from '../../common/result';

/** The value of an ok result; fails the test with the error otherwise. */
export function unwrap<T, E>(r: Result<T, E>): T {
  if (!r.ok) throw new Error(`expected ok, got ${JSON.stringify(r.error)}`);
  return r.value;
}

/** The error of a failed result; fails the test if it was ok. */
export function errorOf<T, E>(r: Result<T, E>): E {
  if (r.ok) throw new Error('expected an error, got ok');
  return r.error;
}
