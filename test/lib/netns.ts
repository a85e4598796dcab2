// The namespace lab helper lives in lab/ (the `ciphergate lab` command uses it too).
export * from '../../lab/netns';
