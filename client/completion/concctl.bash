# bash completion for concctl(1).
#
# concctl itself says what a word can be (concctl __complete CWORD WORDS...,
# client/cmd_complete.c): its commands, options, task names, job ids and
# groups, the last three asked of the daemon within half a second, and
# nothing when the daemon is not running.

_concctl()
{
	local cur=${COMP_WORDS[COMP_CWORD]} ctl=${COMP_WORDS[0]/#\~/$HOME}
	local IFS=$'\n'
	local -a out

	out=($("$ctl" __complete "$COMP_CWORD" "${COMP_WORDS[@]}" \
		2>/dev/null </dev/null)) || return 0
	COMPREPLY=()
	case ${out[0]} in
	files)
		compopt -o filenames 2>/dev/null
		COMPREPLY=($(compgen -f -- "$cur"))
		;;
	dirs)
		compopt -o filenames 2>/dev/null
		COMPREPLY=($(compgen -d -- "$cur"))
		;;
	commands)
		COMPREPLY=($(compgen -c -- "$cur"))
		;;
	users)
		COMPREPLY=($(compgen -u -- "$cur"))
		;;
	variables)
		COMPREPLY=($(compgen -e -- "$cur"))
		;;
	*)
		COMPREPLY=("${out[@]:1}")
		# "ms=", "--state=": no space, the value comes next
		[[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == *= ]] &&
			compopt -o nospace 2>/dev/null
		;;
	esac
	return 0
}
complete -F _concctl concctl
